"""Conformance of the 4D REST emulator with the protocol reference (/work/shared/reference/4d-rest.md)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from erp_pipelines_tests.support.legacy_4d import APP_NAME, PASSWORD, USERNAME, RawRest
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore, StoreError

pytestmark = pytest.mark.integration

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HEX32 = re.compile(r"^[0-9A-F]{32}$")
PRODUCTS = [
    {"ProductID": 1, "ProductName": "Alpha Bolt", "SKU": "A-1", "Category": "Tools", "Price": 10.0,
     "IsManufactured": True, "CreatedDate": dt.date(2020, 1, 15)},
    {"ProductID": 2, "ProductName": "alpha nut", "SKU": "A-2", "Category": "tools", "Price": 20.0,
     "IsManufactured": False, "CreatedDate": dt.date(2021, 6, 1)},
    {"ProductID": 3, "ProductName": "Beta Gear", "SKU": "B-1", "Category": "Pumps", "Price": 30.0,
     "IsManufactured": True, "CreatedDate": dt.date(2022, 3, 10)},
    {"ProductID": 4, "ProductName": "O'Reilly Special", "SKU": "O-1", "Category": "Pumps", "Price": 40.0,
     "IsManufactured": False, "CreatedDate": None},
    {"ProductID": 5, "ProductName": "Gamma 100% pure_x", "SKU": "G-1", "Category": None, "Price": -5.0,
     "IsManufactured": True, "CreatedDate": dt.date(2023, 12, 31)},
    {"ProductID": 6, "ProductName": "'; DROP TABLE x; --", "SKU": "R&D = Team", "Category": "Tools",
     "Price": 60.0, "IsManufactured": False, "CreatedDate": dt.date(2017, 3, 6)},
]


def q(text: str) -> str:
    """Percent-encode a query value the way a careful client does (spaces as %20)."""
    return quote(text, safe="")


def filter_url(dataclass: str, expression: str, params: list | None = None, extra: str = "") -> str:
    url = f'/rest/{dataclass}?$filter={q(chr(34) + expression + chr(34))}'
    if params is not None:
        url += "&$params=" + q("'" + json.dumps(params).replace("'", "\\u0027") + "'")
    return url + extra


@pytest.fixture
def legacy4d_server(make_legacy4d_server: Callable[..., EmulatorServer]) -> EmulatorServer:
    """The emulator with its own defaults (it accepts plain attributes in $attributes, as 4D's SDK uses)."""
    return make_legacy4d_server(plain_attributes_param=True)


def control(server: EmulatorServer, endpoint: str, payload: dict | None = None) -> dict:
    response = requests.post(f"{server.base_url}/_emulator/{endpoint}", json=payload or {}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def keys(response: requests.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return sorted(int(e["__KEY"]) for e in response.json()["__ENTITIES"])


def err_codes(response: requests.Response) -> list[int]:
    return [e["errCode"] for e in response.json()["__ERROR"]]


@pytest.fixture
def products(legacy4d_store: LegacyStore) -> LegacyStore:
    legacy4d_store.insert("Products", PRODUCTS)
    return legacy4d_store


# --- catalog ------------------------------------------------------------------------------------


def test_catalog_lists_every_dataclass_with_uris(rest: RawRest) -> None:
    body = rest.get("/rest/$catalog").json()
    names = [dc["name"] for dc in body["dataClasses"]]
    assert names == ["Products", "Customers", "Orders", "Invoices", "Inventory", "BillOfMaterials", "Suppliers",
                     "__DeletedRecords"]
    assert body["dataClasses"][0] == {"name": "Products", "uri": "/rest/$catalog/Products",
                                      "dataURI": "/rest/Products"}
    assert HEX32.match(body["__UNIQID"])


def test_catalog_all_describes_attributes_keys_and_tracking(rest: RawRest) -> None:
    classes = {dc["name"]: dc for dc in rest.get("/rest/$catalog/$all").json()["dataClasses"]}
    products = classes["Products"]
    assert products["key"] == [{"name": "ProductID"}]
    attrs = {a["name"]: a for a in products["attributes"]}
    assert products["attributes"][0]["name"] == "ProductID"
    assert attrs["ProductID"]["identifying"] is True and attrs["ProductID"]["type"] == "long"
    assert {attrs[n]["type"] for n in ("Price", "Cost", "TaxRate")} == {"number"}
    assert attrs["IsPurchased"]["type"] == "bool" and attrs["CreatedDate"]["type"] == "date"
    assert attrs["__GlobalStamp"]["type"] == "long64"
    orders = {a["name"]: a for a in classes["Orders"]["attributes"]}
    assert orders["OrderTime"]["type"] == "duration"
    assert orders["customer"]["kind"] == "relatedEntity" and orders["customer"]["type"] == "Customers"
    # Only the documented attributes (DOC ORDA/global-stamp); the table's own key is not exposed at all.
    deleted = [a["name"] for a in classes["__DeletedRecords"]["attributes"]]
    assert deleted == ["__PrimaryKey", "__Stamp", "__TableName", "__TableNumber"]
    assert classes["__DeletedRecords"]["key"] == []


def test_deleted_records_key_is_not_exposed(rest: RawRest, products: LegacyStore) -> None:
    products.delete("Products", [1, 2])
    entity = rest.get("/rest/__DeletedRecords?$top=1").json()["__ENTITIES"][0]
    assert "ID" not in entity and set(entity) >= {"__PrimaryKey", "__Stamp", "__TableName", "__TableNumber"}
    assert rest.get(f'/rest/__DeletedRecords?$orderby={q(chr(34) + "ID" + chr(34))}').status_code == 404
    assert rest.get(filter_url("__DeletedRecords", "ID > :1", [0])).status_code == 500
    assert rest.get("/rest/__DeletedRecords/ID").status_code == 404


def test_catalog_of_one_dataclass_and_unknown_dataclass(rest: RawRest) -> None:
    assert rest.get("/rest/$catalog/Invoices").json()["tableNumber"] == 4
    for path in ("/rest/$catalog/Nope", "/rest/Nope", "/rest/products"):
        response = rest.get(path)
        assert response.status_code == 404
        assert err_codes(response) == [1800]
        assert response.json()["__ERROR"][0]["componentSignature"] == "dbmg"


# --- envelope, paging ------------------------------------------------------------------------------


def test_collection_envelope_has_4d_key_order_and_default_top(rest: RawRest, legacy4d_seeded: dict) -> None:
    response = rest.get("/rest/Products")
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    body = response.json()
    assert list(body) == ["__DATACLASS", "__entityModel", "__GlobalStamp", "__COUNT", "__FIRST", "__ENTITIES",
                          "__SENT"]
    assert body["__COUNT"] == legacy4d_seeded["counts"]["Products"] == 200
    assert body["__SENT"] == len(body["__ENTITIES"]) == 100
    assert body["__FIRST"] == 0
    assert body["__GlobalStamp"] == legacy4d_seeded["global_stamp"]
    entity = body["__ENTITIES"][0]
    assert list(entity)[:4] == ["__KEY", "__TIMESTAMP", "__STAMP", "ProductID"]
    assert entity["__KEY"] == "1" and entity["ProductID"] == 1
    assert TIMESTAMP.match(entity["__TIMESTAMP"])
    assert entity["__STAMP"] == 1


def test_top_limit_and_skip(rest: RawRest, legacy4d_seeded: dict) -> None:
    body = rest.get("/rest/Products?$top=5&$skip=10").json()
    assert (body["__FIRST"], body["__SENT"], body["__COUNT"]) == (10, 5, 200)
    assert [e["ProductID"] for e in body["__ENTITIES"]] == [11, 12, 13, 14, 15]
    assert rest.get("/rest/Products?$limit=7").json()["__SENT"] == 7
    assert rest.get("/rest/Products?$top=1000").json()["__SENT"] == 200
    assert rest.get("/rest/Products?$skip=195").json()["__SENT"] == 5
    response = rest.get("/rest/Products?$top=abc")
    assert response.status_code == 400 and err_codes(response) == [1806]


def test_as_array_returns_bare_entities(rest: RawRest, products: LegacyStore) -> None:
    body = rest.get("/rest/Products?$asArray=true&$top=2").json()
    assert isinstance(body, list) and [e["__KEY"] for e in body] == ["1", "2"]


# --- single entities --------------------------------------------------------------------------------


def test_entity_by_key_in_both_syntaxes_and_by_attribute(rest: RawRest, products: LegacyStore) -> None:
    by_paren = rest.get("/rest/Products(3)").json()
    assert by_paren == rest.get("/rest/Products[3]").json() == rest.get('/rest/Products("3")').json()
    assert list(by_paren)[:3] == ["__DATACLASS", "__entityModel", "__KEY"]
    assert by_paren["__entityModel"] == "Products" and by_paren["ProductName"] == "Beta Gear"
    subset = rest.get("/rest/Products(3)/SKU,Price").json()
    assert [k for k in subset if not k.startswith("__")] == ["SKU", "Price"]
    by_attr = rest.get("/rest/Products:SKU(b-1)").json()
    assert by_attr["__KEY"] == "3"
    for path in ("/rest/Products(999)", "/rest/Products[abc]", "/rest/Products:SKU(nope)"):
        response = rest.get(path)
        assert response.status_code == 404 and err_codes(response) == [1543], path


def test_dates_times_relations_serialization(rest: RawRest, legacy4d_store: LegacyStore) -> None:
    legacy4d_store.insert("Products", PRODUCTS)
    legacy4d_store.insert("Customers", [{"CustomerID": 3, "CustomerName": "Acme"}])
    legacy4d_store.insert("Orders", [
        {"OrderID": 1, "CustomerID": 3, "OrderDate": "6!3!2017", "OrderTime": 36_730_000, "DeliveryDate": None,
         "Status": "OPEN"},
        {"OrderID": 2, "CustomerID": None, "OrderDate": "2019-12-24", "OrderTime": "10:12:10", "Status": "OPEN"},
    ])
    assert rest.get("/rest/Products(6)").json()["CreatedDate"] == "6!3!2017"
    assert rest.get("/rest/Products(4)").json()["CreatedDate"] == "0!0!0"
    order = rest.get("/rest/Orders(1)").json()
    assert order["OrderDate"] == "6!3!2017" and order["DeliveryDate"] == "0!0!0"
    assert order["OrderTime"] == 36_730_000
    assert order["customer"] == {"__deferred": {"uri": "/rest/Customers(3)", "__KEY": "3"}}
    other = rest.get("/rest/Orders(2)").json()
    assert other["customer"] is None and other["OrderTime"] == 36_730_000 and other["OrderDate"] == "24!12!2019"
    inlined = rest.get("/rest/Orders(1)?$attributes=Status,customer.*").json()
    assert inlined["customer"]["CustomerName"] == "Acme" and inlined["customer"]["__KEY"] == "3"


# --- $filter ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "params", "expected"),
    [
        ("ProductName=alpha@", None, [1, 2]),
        ("ProductName='ALPHA BOLT'", None, [1]),
        ("ProductName==:1", ["o'reilly special"], [4]),
        ("ProductName=@special", None, [4]),
        ("ProductName==='Alpha@'", None, []),
        ("ProductName IS 'beta gear'", None, [3]),
        ("ProductName!=='beta gear'", None, [1, 2, 4, 5, 6]),
        ("Price>=20 AND Price<40", None, [2, 3]),
        ("Price<0", None, [5]),
        ("Price#10", None, [2, 3, 4, 5, 6]),
        ("Price!=10", None, [2, 3, 4, 5, 6]),
        ("Category!=tools", None, [3, 4, 5]),
        ("Category=null", None, [5]),
        ("Category!=null", None, [1, 2, 3, 4, 6]),
        ("ProductID IN [1,3,5]", None, [1, 3, 5]),
        ("ProductID IN :1", [[2, 4]], [2, 4]),
        ("SKU in :1", [["a-1", "B-1"]], [1, 3]),
        ("ProductName begin al", None, [1, 2]),
        ("ProductName % gear", None, [3]),
        ("(Price<15 OR Price>35) AND IsManufactured=true", None, [1, 5]),
        ("NOT(Category=pumps)", None, [1, 2, 5, 6]),
        ("Price>10 & Price<40 | ProductID=1", None, [1, 2, 3]),
        ("Price>10 && Price<40 || ProductID=1", None, [1, 2, 3]),
        ("Price>0 EXCEPT Category=pumps", None, [1, 2, 6]),
        ("CreatedDate>=2021-06-01", None, [2, 3, 5]),
        ("CreatedDate<:1", ["1!6!2021"], [1, 6]),
        ("CreatedDate=:1", ["2022-03-10T00:00:00Z"], [3]),
        ("CreatedDate=0!0!0", None, [4]),
        ("ProductName=:1", ["@100%@"], [5]),
        ("ProductName=:1", ["@100_@"], []),
        ("IsManufactured=false AND Price>:1", [25], [4, 6]),
        ("SKU=:1", ["R&D = Team"], [6]),
    ],
)
def test_filter_operators(rest: RawRest, products: LegacyStore, expression: str, params: list | None,
                          expected: list[int]) -> None:
    assert keys(rest.get(filter_url("Products", expression, params))) == expected


def test_quoted_values_keep_ampersand_and_equals_literal(rest: RawRest, products: LegacyStore) -> None:
    # %26 and = inside the double-quoted $filter must not split the query string (reference §1).
    expression = q('"SKU=' + "'R&D = Team'" + '"')
    assert keys(rest.get(f"/rest/Products?$filter={expression}")) == [6]
    assert keys(rest.get("/rest/Products?$filter='ProductID=2'&$top=5")) == [2]
    response = rest.get('/rest/Products?$filter="ProductID=2')
    assert response.status_code == 400 and err_codes(response) == [1809]


@pytest.mark.parametrize(
    "payload",
    ["'; DROP TABLE x; --", '") OR 1=1 --', "x' OR '1'='1", "1; DELETE FROM \"Products\"", "%", "@", "\\'"],
)
def test_injection_payloads_are_bound_values(rest: RawRest, products: LegacyStore, payload: str) -> None:
    literal_matches = sum(1 for p in PRODUCTS if p["ProductName"].lower() == payload.lower())
    body = rest.get(filter_url("Products", "ProductName===:1", [payload])).json()
    assert body["__COUNT"] == literal_matches
    assert rest.get("/rest/Products").json()["__COUNT"] == len(PRODUCTS)
    assert products.count("Products") == len(PRODUCTS)


def test_injection_in_keys_orderby_and_attributes_is_rejected(rest: RawRest, products: LegacyStore) -> None:
    assert err_codes(rest.get(f"/rest/Products({q('1; DROP TABLE x')})")) == [1543]
    assert err_codes(rest.get(f'/rest/Products?$orderby={q(chr(34) + "ProductID; DROP TABLE x" + chr(34))}')) == [1810]
    response = rest.get(f"/rest/Products?$attributes={q('SKU,(SELECT 1)')}")
    assert response.status_code == 404 and err_codes(response) == [1500, 1804]
    assert products.count("Products") == len(PRODUCTS)


@pytest.mark.parametrize(
    ("expression", "params", "status", "codes"),
    [
        ("ProductID=:2", [1], 500, [1279]),
        ("ProductID=:1", [None], 500, [1279]),
        ("Price=:1", ["abc"], 500, [1280]),
        ("Price=abc", None, 500, [1203]),
        ("Price>", None, 500, [1201]),
        ("Price ~ 3", None, 500, [1112]),
        ("(Price>3", None, 500, [1201]),
        ("Nope=1", None, 500, [1500, 1201]),
    ],
)
def test_filter_errors(rest: RawRest, products: LegacyStore, expression: str, params: list | None, status: int,
                       codes: list[int]) -> None:
    response = rest.get(filter_url("Products", expression, params))
    assert response.status_code == status
    assert err_codes(response) == codes


def test_malformed_params_is_400(rest: RawRest, products: LegacyStore) -> None:
    response = rest.get(f'/rest/Products?$filter="ProductID=:1"&$params={q("[1,")}')
    assert response.status_code == 400 and err_codes(response) == [1806]


def test_global_stamp_is_filterable(rest: RawRest, legacy4d_seeded: dict) -> None:
    stamp = legacy4d_seeded["global_stamp"]
    assert rest.get(filter_url("Products", "__GlobalStamp>=:1", [stamp])).json()["__COUNT"] == 0
    assert rest.get(filter_url("Products", "__GlobalStamp<=:1", [3])).json()["__COUNT"] == 3


# --- orderby, attributes, compute, distinct ----------------------------------------------------------


def test_orderby(rest: RawRest, products: LegacyStore) -> None:
    body = rest.get(f'/rest/Products?$orderby={q(chr(34) + "Price desc" + chr(34))}').json()
    assert [e["ProductID"] for e in body["__ENTITIES"]] == [6, 4, 3, 2, 1, 5]
    body = rest.get(f'/rest/Products?$orderby={q(chr(34) + "IsManufactured, Price desc" + chr(34))}').json()
    assert [e["ProductID"] for e in body["__ENTITIES"]] == [6, 4, 2, 3, 1, 5]
    for bad in ("Nope", "Price sideways", "customer"):
        response = rest.get(f'/rest/Products?$orderby={q(chr(34) + bad + chr(34))}')
        assert response.status_code == 404 and err_codes(response) == [1810]


def test_attributes_parameter_and_path(rest: RawRest, products: LegacyStore) -> None:
    for path in ("/rest/Products?$attributes=SKU,Price&$top=1", "/rest/Products/SKU,Price?$top=1"):
        entity = rest.get(path).json()["__ENTITIES"][0]
        assert list(entity) == ["__KEY", "__TIMESTAMP", "__STAMP", "SKU", "Price"]
    response = rest.get("/rest/Products/Nope")
    assert response.status_code == 404 and err_codes(response) == [1500, 1804]


def test_compute_and_distinct(rest: RawRest, products: LegacyStore) -> None:
    assert rest.get("/rest/Products/Price?$compute=sum").json() == 155
    assert rest.get("/rest/Products/Price?$compute=max").json() == 60
    assert rest.get(filter_url("Products", "Price>0", None, "&$compute=count")).json() == 5
    everything = rest.get("/rest/Products/Price?$compute=$all").json()
    assert everything == {"Price": {"count": 6, "sum": 155, "average": pytest.approx(155 / 6), "min": -5, "max": 60}}
    text = rest.get("/rest/Products/SKU?$compute=$all").json()
    assert text == {"SKU": {"count": 6, "min": "A-1", "max": "R&D = Team"}}
    assert rest.get("/rest/Products/CreatedDate?$compute=min").json() == "6!3!2017"
    # 4D compares without regard to case or accents, and $top/$skip page the entities, not the values
    assert rest.get("/rest/Products/Category?$distinct=true").json() == ["Pumps", "Tools"]
    assert rest.get("/rest/Products/Category?$distinct=true&$top=2").json() == ["Tools"]
    assert rest.get("/rest/Products/Category?$distinct=true&$skip=2&$top=2").json() == ["Pumps"]
    response = rest.get("/rest/Products/Price?$compute=median")
    assert response.status_code == 400 and err_codes(response) == [1817]


# --- entity sets ------------------------------------------------------------------------------------


def test_entity_set_paging_release_and_deleted_holes(rest: RawRest, products: LegacyStore) -> None:
    first = rest.get(f'/rest/Products?$method=entityset&$top=2&$orderby={q(chr(34) + "ProductID" + chr(34))}').json()
    assert next(iter(first)) == "__ENTITYSET"
    uri = first["__ENTITYSET"]
    assert re.match(r"^/rest/Products/\$entityset/[0-9A-F]{32}$", uri)
    assert (first["__COUNT"], first["__SENT"]) == (6, 2)
    products.delete("Products", [4])
    products.insert("Products", [{"ProductID": 99, "ProductName": "late"}])
    page = rest.get(f"{uri}?$skip=2&$top=3").json()
    assert page["__COUNT"] == 6 and page["__FIRST"] == 2
    assert [e.get("__KEY") for e in page["__ENTITIES"]] == ["3", None, "5"]
    assert page["__ENTITIES"][1] == {"__STAMP": 0}
    assert rest.get(f"{uri}?$method=release").json() == {"ok": True}
    gone = rest.get(uri)
    assert gone.status_code == 404 and err_codes(gone) == [1802]
    assert rest.get(f"{uri}?$method=release").status_code == 404


def test_entity_set_expires_after_timeout(rest: RawRest, products: LegacyStore) -> None:
    uri = rest.get("/rest/Products?$method=entityset&$timeout=1").json()["__ENTITYSET"]
    assert rest.get(uri).status_code == 200
    time.sleep(1.3)
    response = rest.get(uri)
    assert response.status_code == 404 and err_codes(response) == [1802]


def test_saved_filter_rebuilds_an_expired_set_under_the_same_id(rest: RawRest, products: LegacyStore) -> None:
    saved = q(chr(34) + "Price>25" + chr(34))
    uri = rest.get(f"/rest/Products?$method=entityset&$filter={saved}").json()["__ENTITYSET"]
    rest.get(f"{uri}?$method=release")
    rebuilt = rest.get(f"{uri}?$savedfilter={saved}").json()
    assert rebuilt["__ENTITYSET"] == uri
    assert sorted(int(e["__KEY"]) for e in rebuilt["__ENTITIES"]) == [3, 4, 6]


def test_entity_set_of_another_dataclass(rest: RawRest, products: LegacyStore) -> None:
    set_id = rest.get("/rest/Products?$method=entityset").json()["__ENTITYSET"].rsplit("/", 1)[1]
    response = rest.get(f"/rest/Customers/$entityset/{set_id}")
    assert response.status_code == 404 and err_codes(response) == [1803]


# --- sessions, licenses, login ----------------------------------------------------------------------


def test_login_sets_both_session_cookies(legacy4d_server: EmulatorServer) -> None:
    client = RawRest(legacy4d_server.base_url)
    response = client.login()
    assert response.status_code == 200 and response.json() == {"result": True}
    cookies = client.http.cookies.get_dict()
    assert HEX32.match(cookies["WASID4D"]) and cookies[f"4DSID_{APP_NAME}"] == cookies["WASID4D"]
    assert client.get("/rest/Products").status_code == 200


def test_a_refused_login_is_401_1822_and_holds_a_license(legacy4d_server: EmulatorServer) -> None:
    """Default mode: "any REST request is processed in a web user session that automatically consumes a
    license" (DOC 20-R5 authUsers), the refused login included; retried in the same session, no second one."""
    client = RawRest(legacy4d_server.base_url)
    response = client.login(password="wrong")
    assert response.status_code == 401
    assert response.headers["4D-CREDENTIALS"] == "1.0"
    assert err_codes(response) == [1822]
    assert "WASID4D" in client.http.cookies.get_dict()
    assert client.login(username="intruder").status_code == 401
    assert (client.stats()["licenses_in_use"], client.stats()["sessions_opened"]) == (1, 1)
    assert client.login().json() == {"result": True}  # the same session, now logged in
    assert client.get("/rest/Products").status_code == 200
    assert (client.stats()["licenses_in_use"], client.stats()["sessions_opened"]) == (1, 1)
    assert PASSWORD not in response.text


def test_data_requests_need_a_logged_in_session_and_each_401_opens_one(legacy4d_server: EmulatorServer) -> None:
    client = RawRest(legacy4d_server.base_url)
    for path in ("/rest/Products", "/rest/$catalog"):
        response = requests.get(f"{legacy4d_server.base_url}{path}", timeout=10)
        assert response.status_code == 401 and err_codes(response) == [1822]
        assert "WASID4D=" in response.headers["Set-Cookie"]
    assert client.stats()["licenses_in_use"] == 2  # each cookie-less 401 opened a session holding a license
    client.http.cookies.set("WASID4D", "0" * 32)
    assert client.get("/rest/Products").status_code == 401  # an unknown cookie too: the third license
    assert requests.get(f"{legacy4d_server.base_url}/rest/Products", timeout=10).status_code == 402


def test_session_inactivity_timeout_gives_401_in_a_new_session(
    make_legacy4d_server: Callable[..., EmulatorServer],
) -> None:
    server = make_legacy4d_server()
    client = RawRest(server.base_url)
    client.login()
    assert client.get("/rest/Products").status_code == 200
    control(server, "clock", {"advance": 3599})
    assert client.get("/rest/Products").status_code == 200  # use restarts the inactivity timer
    old = client.http.cookies.get_dict()["WASID4D"]
    control(server, "clock", {"advance": 3601})
    assert client.stats()["licenses_in_use"] == 0
    expired = client.get("/rest/Products")
    assert expired.status_code == 401
    assert client.http.cookies.get_dict()["WASID4D"] != old
    assert client.stats()["licenses_in_use"] == 1
    assert client.login().json() == {"result": True}
    assert client.get("/rest/Products").status_code == 200 and client.stats()["sessions_opened"] == 2


def test_logout_frees_no_license_unless_the_old_behaviour_is_asked_for(
    make_legacy4d_server: Callable[..., EmulatorServer],
) -> None:
    """v18-v21 document no $directory/logout; sessions close at their timeout or a restart."""
    server = make_legacy4d_server(licenses=2)
    first, second, third = (RawRest(server.base_url) for _ in range(3))
    assert first.login().json() == {"result": True}
    assert second.login().json() == {"result": True}
    refused = third.login()
    assert refused.status_code == 402 and err_codes(refused) == [1823]
    assert first.logout().status_code == 404
    assert first.get("/rest/Products").status_code == 200  # still logged in, still holding its license
    assert third.login().status_code == 402
    control(server, "restart")
    assert first.get("/rest/Products").status_code == 401  # a restart closes every session
    assert third.login().json() == {"result": True}
    stats = third.stats()
    assert stats["licenses_in_use"] == 2 and stats["max_concurrent_sessions"] == 2

    old = make_legacy4d_server(licenses=1, logout_releases=True)
    client = RawRest(old.base_url)
    assert client.login().json() == {"result": True}
    assert client.logout().json() == {"result": True}
    assert client.stats()["licenses_in_use"] == 0


def test_force_login_mode_guest_sessions_and_authentify(make_legacy4d_server: Callable[..., EmulatorServer]) -> None:
    """DOC 20-R5 authUsers: guest sessions take no license and may only run descriptive requests; authentify()
    calls Session.setPrivileges(), which takes the license; a directory login grants nothing."""
    server = make_legacy4d_server(force_login=True, licenses=1)
    guest = RawRest(server.base_url)
    assert guest.get("/rest/$catalog/$all").status_code == 200
    assert guest.get("/rest/$catalog/Products").status_code == 200
    assert guest.get("/rest/Products").status_code == 401
    assert guest.login().json() == {"result": True}
    assert guest.get("/rest/Products").status_code == 401  # still a guest
    assert guest.post("/rest/$catalog/authentify", [{"name": USERNAME, "password": "wrong"}]).json() == {
        "result": "Wrong password"}
    assert guest.post("/rest/$catalog/authentify", [{"name": "nobody", "password": PASSWORD}]).json() == {
        "result": "Wrong user"}
    assert guest.stats()["licenses_in_use"] == 0 and guest.stats()["sessions_open"] == 1
    assert guest.post("/rest/$catalog/authentify", [{"name": USERNAME, "password": PASSWORD}]).status_code == 200
    assert guest.get("/rest/Products").status_code == 200
    assert guest.stats()["licenses_in_use"] == 1
    other = RawRest(server.base_url)
    assert other.get("/rest/$catalog").status_code == 200  # guests are free even with no license left
    refused = other.post("/rest/$catalog/authentify", [{"name": USERNAME, "password": PASSWORD}])
    assert refused.status_code == 402 and err_codes(refused) == [1823]
    assert guest.get("/rest/$catalog/authentify").status_code == 400


def test_plain_attributes_param_can_be_refused(make_legacy4d_server: Callable[..., EmulatorServer],
                                               legacy4d_store: LegacyStore) -> None:
    legacy4d_store.insert("Products", PRODUCTS)
    legacy4d_store.insert("Customers", [{"CustomerID": 1, "CustomerName": "Acme", "IsActive": True}])
    legacy4d_store.insert("Orders", [{"OrderID": 1, "CustomerID": 1, "Status": "OPEN", "TotalAmount": 1}])
    server = make_legacy4d_server(plain_attributes_param=False)
    client = RawRest(server.base_url)
    client.login()
    refused = client.get("/rest/Products?$attributes=SKU,Price")
    assert refused.status_code == 404 and err_codes(refused) == [1804]
    assert client.get("/rest/Products/SKU,Price/?$top=1").status_code == 200
    assert client.get("/rest/Orders?$attributes=customer.CustomerName").status_code == 200


def test_restored_data_file_sends_the_global_stamp_back(rest: RawRest, legacy4d_server: EmulatorServer,
                                                        products: LegacyStore) -> None:
    backup = control(legacy4d_server, "data_file", {"action": "backup"})["global_stamp"]
    products.update("Products", 1, {"Price": 11.0})
    products.delete("Products", [2])
    assert products.global_stamp() == backup + 2
    restored = control(legacy4d_server, "data_file", {"action": "restore"})
    assert restored["global_stamp"] == backup and restored["dropped"] == 1
    rest.login()
    page = rest.get("/rest/Products/ProductID/?$top=1").json()
    assert page["__GlobalStamp"] == backup and page["__COUNT"] == len(PRODUCTS)
    assert rest.get("/rest/__DeletedRecords").json()["__COUNT"] == 0
    assert control(legacy4d_server, "global_stamp", {"value": 3})["global_stamp"] == 3


def test_open_access_mode_gives_every_cookieless_request_a_session(
    make_legacy4d_server: Callable[..., EmulatorServer],
) -> None:
    server = make_legacy4d_server(username=None, password=None, licenses=2)
    keeper = RawRest(server.base_url)
    assert keeper.get("/rest/Products").status_code == 200
    assert "WASID4D" in keeper.http.cookies.get_dict()
    assert keeper.get("/rest/Products").status_code == 200
    assert requests.get(f"{server.base_url}/rest/Products", timeout=10).status_code == 200
    refused = requests.get(f"{server.base_url}/rest/Products", timeout=10)
    assert refused.status_code == 402 and err_codes(refused) == [1823]


# --- change tracking and writes -------------------------------------------------------------------------


def test_update_stamps_entity_with_current_global_stamp_then_increments(rest: RawRest, products: LegacyStore) -> None:
    before = rest.get("/rest/Products(2)").json()
    stamp = rest.get("/rest/Products?$top=1").json()["__GlobalStamp"]
    assert stamp == products.global_stamp() == len(PRODUCTS) + 1
    saved = rest.post("/rest/Products?$method=update",
                      [{"__KEY": "2", "__STAMP": before["__STAMP"], "Price": 21.5}]).json()["__ENTITIES"][0]
    assert saved["Price"] == 21.5 and saved["__STAMP"] == before["__STAMP"] + 1
    assert saved["__GlobalStamp"] == stamp
    assert saved["__TIMESTAMP"] > before["__TIMESTAMP"]
    assert rest.get("/rest/Products?$top=1").json()["__GlobalStamp"] == stamp + 1
    changed = rest.get(filter_url("Products", "__GlobalStamp>=:1", [stamp])).json()
    assert [e["__KEY"] for e in changed["__ENTITIES"]] == ["2"]


def test_update_creates_and_rejects_stale_stamps(rest: RawRest, products: LegacyStore) -> None:
    created = rest.post("/rest/Products?$method=update",
                        {"ProductName": "Fresh", "Price": 1, "CreatedDate": "2!1!2024"}).json()
    assert created["__KEY"] == "7" and created["__STAMP"] == 1 and created["CreatedDate"] == "2!1!2024"
    stale = rest.post("/rest/Products?$method=update", [{"__KEY": "7", "__STAMP": 5, "Price": 2}]).json()
    assert [e["errCode"] for e in stale["__ENTITIES"][0]["__ERROR"]] == [1263, 1046]
    assert rest.get("/rest/Products(7)").json()["Price"] == 1
    bad = rest.post("/rest/Products?$method=update", [{"Price": "cheap"}]).json()
    assert bad["__ENTITIES"][0]["__ERROR"][0]["errCode"] == 1046
    get_update = rest.get("/rest/Products?$method=update")
    assert get_update.status_code == 400


def test_delete_records_deletions_with_their_own_stamp(rest: RawRest, products: LegacyStore) -> None:
    stamp = products.global_stamp()
    assert rest.post("/rest/Products(3)?$method=delete").json() == {"ok": True}
    assert rest.get("/rest/Products(3)").status_code == 404
    assert rest.post(filter_url("Products", "Price<:1", [15], "&$method=delete")).json()["deleted"] == 2
    deleted = rest.get("/rest/__DeletedRecords").json()
    assert deleted["__GlobalStamp"] == stamp + 3
    rows = [(e["__PrimaryKey"], e["__Stamp"], e["__TableName"], e["__TableNumber"]) for e in deleted["__ENTITIES"]]
    assert rows == [("3", stamp, "Products", 1), ("1", stamp + 1, "Products", 1), ("5", stamp + 2, "Products", 1)]
    since = rest.get(filter_url("__DeletedRecords", "__TableName=:1 AND __Stamp>=:2", ["Products", stamp + 1]))
    assert sorted(e["__PrimaryKey"] for e in since.json()["__ENTITIES"]) == ["1", "5"]
    assert rest.post("/rest/Products(3)?$method=delete").status_code == 404


def test_store_api_raises_on_stale_stamp_and_saves_nothing(products: LegacyStore) -> None:
    stamp = products.global_stamp()
    with pytest.raises(StoreError) as caught:
        products.update("Products", 1, {"Price": 1}, stamp=9)
    assert caught.value.stack[0][0] == 1263
    assert products.global_stamp() == stamp
    updated = products.update("Products", 1, {"Price": 11}, stamp=1)
    assert updated["__STAMP"] == 2 and updated["__GlobalStamp"] == stamp


# --- fault injection and stats --------------------------------------------------------------------------


def test_fault_http_500_then_recovery(rest: RawRest, products: LegacyStore) -> None:
    rest.fault("http_500", count=2, path_contains="Products")
    assert rest.get("/rest/Customers").status_code == 200
    assert [rest.get("/rest/Products").status_code for _ in range(3)] == [500, 500, 200]


def test_fault_delay_close_licenses_and_drop_session(rest: RawRest, products: LegacyStore) -> None:
    rest.fault("delay", seconds=0.4)
    started = time.monotonic()
    assert rest.get("/rest/Products").status_code == 200
    assert time.monotonic() - started >= 0.4
    rest.fault("close_connection")
    with pytest.raises(requests.ConnectionError):
        rest.get("/rest/Products")
    rest.fault("exhaust_licenses")
    response = rest.get("/rest/Products")
    assert response.status_code == 402 and err_codes(response) == [1823]
    rest.fault("drop_session")
    assert rest.get("/rest/Products").status_code == 401
    assert rest.login().json() == {"result": True}
    rest.fault("http_500", count=-1)
    assert requests.delete(f"{rest.base_url}/_emulator/faults", timeout=10).status_code == 200
    assert rest.get("/rest/Products").status_code == 200


def test_stats_report_requests_sessions_and_filters(rest: RawRest, products: LegacyStore) -> None:
    rest.get(filter_url("Products", "ProductName=:1", ["'; DROP TABLE x; --"]))
    stats = rest.stats()
    assert stats["requests_served"] == 2
    assert stats["sessions_open"] == 1 and stats["max_concurrent_sessions"] == 1
    last = stats["last_filters"][-1]
    assert last["filter"] == "ProductName=:1"
    assert json.loads(last["params"]) == ["'; DROP TABLE x; --"]
    bad = requests.post(f"{rest.base_url}/_emulator/faults", json={"kind": "meteor"}, timeout=10)
    assert bad.status_code == 400


def test_cli_entry_point_reports_readiness(legacy4d_store: LegacyStore, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [sys.executable, "-m", "erp_sandbox.legacy_4d.server", "--port", "0", "--store-url", legacy4d_store.url,
         "--username", USERNAME, "--password", PASSWORD, "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert "legacy-4d emulator ready on http://127.0.0.1:" in line
        base_url = ready.read_text().strip()
        assert RawRest(base_url).login().json() == {"result": True}
        assert PASSWORD not in line
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not ready.exists()
