"""Catalog batch reads (one query per chunk of ids, not one per id)."""


def test_batch_reads_cover_every_id_across_chunks(workspace) -> None:
    """sources_by_id / candidates_by_source answer for more ids than one IN (...) query takes."""
    from tests.annotation.conftest import add_sources

    ids = add_sources(workspace, 3)
    many = [*ids, *(f"missing-{i}" for i in range(1200)), ids[0]]  # past two chunks, a repeat, unknown ids
    sources = workspace.catalog.sources_by_id(many)
    assert set(sources) == set(ids) and all(sources[i].id == i for i in ids)
    candidates = workspace.catalog.candidates_by_source(many)
    assert all(candidates[i] == workspace.catalog.candidates(i) for i in ids)
    assert candidates["missing-7"] == []
