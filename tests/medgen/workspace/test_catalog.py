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


def test_referenced_among_answers_for_the_keys_asked_only(workspace) -> None:
    """What recovery asks of a dead run's pending keys: which a row points at (image, mask or candidate)."""
    from tests.annotation.conftest import add_sources

    add_sources(workspace, 2)
    every = workspace.catalog.referenced_keys()
    source = workspace.catalog.sources()[0]
    candidate = workspace.catalog.candidates(source.id)[0]
    asked = {source.image_key, source.mask_key, candidate.image_key, "images/00/unreferenced.png"}
    assert workspace.catalog.referenced_among(asked) == asked - {"images/00/unreferenced.png"}
    assert workspace.catalog.referenced_among(every) == every
    assert workspace.catalog.referenced_among(set()) == set()
