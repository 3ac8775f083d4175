"""The JSON Schemas in proto/schemas/ are generated from the models and must not drift."""

from massgen_proto.schemas import SCHEMA_DIR, render_schemas


def test_committed_schemas_match_the_models():
    rendered = render_schemas()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in SCHEMA_DIR.glob("*.json")}
    stale = sorted(name for name in rendered if on_disk.get(name) != rendered[name])
    extra = sorted(set(on_disk) - set(rendered))
    assert not stale and not extra, (
        f"schemas out of date: {stale}, unexpected: {extra}; run `make schemas`"
    )


def test_every_event_kind_is_in_the_run_event_schema():
    import json

    schema = json.loads(render_schemas()["run_event.schema.json"])
    kinds = {
        definition["properties"]["kind"]["const"]
        for definition in schema["$defs"].values()
        if "kind" in definition.get("properties", {})
    }
    assert {"run_created", "chunk", "answer_accepted", "vote_accepted", "run_finished"} <= kinds
