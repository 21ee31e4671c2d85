"""test_grammar_generate.py: what the default model writes under a JSON Schema
grammar parses and validates, checked with the `jsonschema` package (PyPI)
as the reference.

build/tests/test_grammar_generate (tests/unit/test_grammar_generate.c) drives
the model with the grammar mask, without the engine, at temperature 0 and 1
for every schema in tests/data/schemas (at least 30), and writes one JSON
line per output. Here every output must be finished, parse with json.loads
and validate against its schema (the validator class the schema's $schema
names, Draft 2020-12 by default). The schemas themselves are checked to be
valid schemas, so a broken schema cannot pass by accident.
"""
import json
import os
import subprocess

import jsonschema
import pytest

from conftest import DATA, bin_path


def gen_binary():
    return bin_path().parent / "tests" / "test_grammar_generate"


def test_schemas_are_valid():
    files = sorted((DATA / "schemas").glob("*.json"))
    assert len(files) >= 30
    for f in files:
        schema = json.loads(f.read_text())
        jsonschema.validators.validator_for(schema).check_schema(schema)


def test_generated_outputs_validate(model_path, tmp_path, figures):
    exe = gen_binary()
    if not exe.is_file():
        pytest.fail(f"{exe}: missing\nhint: run `make`", pytrace=False)
    out = tmp_path / "outputs.jsonl"
    env = dict(os.environ, FASTCHAT_MODEL=str(model_path), FC_GRAMMAR_GEN_OUT=str(out))
    root = DATA.parent.parent
    r = subprocess.run([str(exe)], cwd=root, env=env, capture_output=True, text=True, timeout=1500)
    print(r.stdout[-4000:])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for line in r.stdout.splitlines():
        if line.startswith(("mask per token", "forward per token")) or " outputs, " in line:
            figures(f"grammar generate: {line}")
    rows = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
    schemas = {f.name: json.loads(f.read_text()) for f in (DATA / "schemas").glob("*.json")}
    assert len(rows) == 2 * len(schemas)
    assert {(r["schema"], r["temperature"]) for r in rows} == {(s, t) for s in schemas for t in (0, 1)}
    failures = []
    for row in rows:
        schema = schemas[row["schema"]]
        where = f'{row["schema"]} T={row["temperature"]}: {row["output"][:200]!r}'
        if not row["finished"]:
            failures.append(f"{where}: not finished")
            continue
        try:
            value = json.loads(row["output"])
        except ValueError as e:
            failures.append(f"{where}: does not parse: {e}")
            continue
        cls = jsonschema.validators.validator_for(schema)
        errors = list(cls(schema).iter_errors(value))
        if errors:
            failures.append(f"{where}: {errors[0].message}")
    assert not failures, "\n".join(failures)
