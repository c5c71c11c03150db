"""Entity aliases (the seeds' names): declared once on the spec, matched without regard to case, unique across
every registered system."""

from __future__ import annotations

import dataclasses

import pytest

from erp_pipelines.catalog import UnknownEntityError, get_spec, system_of
from erp_pipelines.core.source import SettingError
from erp_pipelines.sources import registry


@pytest.mark.parametrize(("name", "entity"), [
    ("stock", "product_stock"), ("STOCK", "product_stock"), ("ProductStock", "product_stock"),
    ("pricing", "product_pricing"), ("measurements", "product_measurement"), ("measurement", "product_measurement"),
    ("product", "product"), ("Products", "erp_product"), ("BOM", "erp_bill_of_material"),
    ("Customers", "erp_customer"), ("erp_order", "erp_order"),
])
def test_a_seed_name_finds_its_entity(name: str, entity: str) -> None:
    assert get_spec(name).entity == entity


def test_an_unknown_name_lists_the_entities_with_their_aliases() -> None:
    with pytest.raises(UnknownEntityError) as caught:
        get_spec("stok")
    assert "known entities: product, product_measurement (or measurement, measurements, ProductMeasurement)" \
        in str(caught.value)


def test_an_alias_used_twice_is_refused_at_registration() -> None:
    clash = dataclasses.replace(get_spec("erp_inventory"), aliases=("Stock",))
    systems = [system_of(get_spec("stock")), dataclasses.replace(system_of(clash), tables=(clash,))]
    with pytest.raises(SettingError, match="entity name or alias stock registered twice"):
        registry._check_unique(systems)


def test_an_alias_is_a_plain_name() -> None:
    with pytest.raises(ValueError, match="non-empty name without surrounding spaces"):
        dataclasses.replace(get_spec("stock"), aliases=(" stock",))
