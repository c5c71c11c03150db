"""Every catalog spec's mapping onto the sandbox application's tables is complete and consistent."""

from __future__ import annotations

from dataclasses import replace

import pytest

from erp_pipelines.catalog import PROJECT_SPECS
from erp_pipelines.core.spec import KeepDeleted
from erp_pipelines.engine.target import ApplicationTarget, Target, target_of

MAPPED = [spec for spec in PROJECT_SPECS if spec.application is not None]


def test_every_catalog_spec_maps_onto_an_application_table() -> None:
    assert {spec.entity for spec in MAPPED} == {spec.entity for spec in PROJECT_SPECS}


@pytest.mark.parametrize("spec", MAPPED, ids=lambda spec: spec.entity)
def test_the_application_variant_references_application_parents(spec) -> None:
    onto = spec.onto_application()
    assert onto is spec.onto_application() and onto.onto_application() is onto
    assert type(target_of(spec)) is Target and isinstance(target_of(onto), ApplicationTarget)
    target = target_of(onto)
    for fk in onto.foreign_keys:
        assert fk.parent.writes_application
        assert target.table.reference(fk)  # every foreign key lands in a declared surrogate-id column
    written = [name for name, _ in target.written]
    assert len(written) == len(set(written)), written
    assert all(target.column(key) in written for key in onto.business_key)


def test_two_sources_sharing_a_table_each_manage_only_rows_with_their_key() -> None:
    product_4d = next(spec for spec in MAPPED if spec.entity == "erp_product").onto_application()
    item = next(spec for spec in MAPPED if spec.entity == "product").onto_application()
    assert product_4d.target_table == item.target_table == "products_product"
    assert target_of(product_4d).owned("t") == 't."legacy_id" is not null'
    assert target_of(item).owned("t") == 't."item_number" is not null'


def test_a_reference_without_a_declared_column_is_refused_naming_it() -> None:
    stock = next(spec for spec in MAPPED if spec.entity == "product_stock")
    broken = replace(stock, application=replace(stock.application, references=()), writes_application=True)
    with pytest.raises(ValueError, match="no application column is declared for the reference item_number"):
        target_of(broken).written  # noqa: B018


def test_categories_are_never_deleted() -> None:
    category = next(spec for spec in MAPPED if spec.entity == "erp_category")
    assert isinstance(category.application.deletion, KeepDeleted)
    assert target_of(category.onto_application()).keeps_deleted
