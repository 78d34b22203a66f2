"""The sandbox's book storage: paging by offset, upserts, counters, lazy compaction."""

from __future__ import annotations

from connector.sandbox.books import ACTIVE, UNSUBSCRIBED, Book, variable_type


def _book(n: int) -> Book:
    book = Book(1, "b", 0.0)
    for i in range(n):
        book.upsert(f"u{i}@x.io", {}, float(i))
    return book


def test_pages_keep_insertion_order_both_ways() -> None:
    book = _book(10)
    assert [r.email for r in book.page(3, 8)] == ["u8@x.io", "u9@x.io"]
    assert [r.email for r in book.page(3, 0, desc=True)] == ["u9@x.io", "u8@x.io", "u7@x.io"]
    assert [r.email for r in book.page(5, 8, desc=True)] == ["u1@x.io", "u0@x.io"]
    assert book.page(5, 10) == []
    assert book.page(5, 10, desc=True) == []


def test_upsert_keeps_place_and_status_and_merges_variables() -> None:
    book = _book(3)
    book.set_status("u1@x.io", UNSUBSCRIBED)
    row, created = book.upsert("U1@X.IO", {"a": 1}, 99.0)
    assert not created
    assert (row.status, row.variables, row.add_date) == (UNSUBSCRIBED, {"a": 1}, 1.0)
    row, _ = book.upsert("u1@x.io", {"a": 2}, 99.0, update=False)
    assert row.variables == {"a": 1}
    assert [r.email for r in book.page(10, 0)] == ["u0@x.io", "u1@x.io", "u2@x.io"]


def test_counters_follow_status_changes_and_removal() -> None:
    book = _book(4)
    assert (book.total(), book.total(active=True), book.total(active=False)) == (4, 4, 0)
    book.set_status("u0@x.io", UNSUBSCRIBED)
    book.set_status("u0@x.io", UNSUBSCRIBED)
    assert book.total(active=True) == 3
    book.set_status("u0@x.io", ACTIVE)
    assert book.total(active=True) == 4
    assert book.remove("u2@x.io") is not None
    assert book.remove("u2@x.io") is None
    assert book.total() == 3
    assert [r.email for r in book.page(10, 1)] == ["u1@x.io", "u3@x.io"]
    assert book.set_status("nobody@x.io", ACTIVE) is None


def test_active_filters_page_within_the_filtered_rows() -> None:
    book = _book(6)
    for email in ("u1@x.io", "u3@x.io", "u5@x.io"):
        book.set_status(email, UNSUBSCRIBED)
    assert [r.email for r in book.page(2, 1, active=True)] == ["u2@x.io", "u4@x.io"]
    assert [r.email for r in book.page(2, 0, active=False, desc=True)] == ["u5@x.io", "u3@x.io"]


def test_variable_types() -> None:
    assert variable_type(3) == "number"
    assert variable_type(2.5) == "number"
    assert variable_type(True) == "string"
    assert variable_type("2024-01-31") == "date"
    assert variable_type("2024-01-31 10:00") == "string"
    assert variable_type("x") == "string"
