"""test_gguf_writer.py: files written by our GGUF writer are read correctly by
llama.cpp's own reader library, the `gguf` Python package (GGUFReader).

tests/unit/test_gguf.c rebuilds all_types.gguf through the writer's setters
from tests/data/gguf/expected.json and, with FC_GGUF_OUT set, leaves the file
there. This test runs that binary ($FASTCHAT_BUILD/tests/test_gguf, see
BUILD below) and checks every key, type, value and tensor GGUFReader sees against
the same expected.json. Values are compared exactly (floats as stored).
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGUFValueType as VT  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "gguf"
# $FASTCHAT_BUILD, else the directory of $FASTCHAT_BIN (scripts/run_tests.sh
# sets it to $BUILD/fastchat), else build/.
BUILD = Path(os.environ.get("FASTCHAT_BUILD")
             or (str(Path(os.environ["FASTCHAT_BIN"]).parent) if os.environ.get("FASTCHAT_BIN") else "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
TEST_BIN = BUILD / "tests" / "test_gguf"

NP = {
    "UINT8": np.uint8, "INT8": np.int8, "UINT16": np.uint16, "INT16": np.int16,
    "UINT32": np.uint32, "INT32": np.int32, "FLOAT32": np.float32,
    "UINT64": np.uint64, "INT64": np.int64, "FLOAT64": np.float64, "BOOL": np.bool_,
}


def expected(name):
    doc = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))
    return next(f for f in doc["files"] if f["file"] == name)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    if not TEST_BIN.exists():
        pytest.fail(f"{TEST_BIN} not built (make {TEST_BIN.relative_to(ROOT)})")
    out = tmp_path_factory.mktemp("gguf") / "written_by_fastchat.gguf"
    env = dict(os.environ, FC_GGUF_OUT=str(out), FC_GGUF_DATA=str(DATA))
    r = subprocess.run([str(TEST_BIN)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert out.exists(), "test_gguf did not write FC_GGUF_OUT"
    return out


def scalar_expected(vtype, v):
    """The Python value GGUFReader should produce for a JSON-encoded scalar."""
    if vtype in ("UINT64", "INT64"):
        return int(v)
    if vtype == "STRING":
        return bytes.fromhex(v)
    if vtype == "BOOL":
        return bool(v)
    if vtype in ("FLOAT32", "FLOAT64"):
        return NP[vtype](v).item()
    return int(v)


def flatten(vtype, v):
    """Leaf values of an encoded value, in file order, and the type chain."""
    if vtype == "ARRAY":
        leaves, types = [], [VT.ARRAY]
        inner = None
        for e in v["value"]:
            l, t = flatten(v["elem_type"], e)
            leaves += l
            inner = inner or t
        return leaves, types + (inner or [VT[v["elem_type"]]])
    return [scalar_expected(vtype, v)], [VT[vtype]]


def field_leaves(field):
    """Leaf values GGUFReader found, as Python values (strings as bytes)."""
    leaf = field.types[-1]
    out = []
    for idx in field.data:
        part = field.parts[idx]
        if leaf == VT.STRING:
            out.append(bytes(part))
        else:
            out.extend(x.item() for x in part)
    return out


def test_reference_reader_accepts_our_file(written):
    r = gguf.GGUFReader(written)
    exp = expected("all_types.gguf")
    assert r.alignment == exp["alignment"]
    assert r.data_offset == exp["data_offset"]
    assert written.stat().st_size == exp["size"]
    assert r.fields["GGUF.version"].parts[0][0] == 3


def test_every_value(written):
    r = gguf.GGUFReader(written)
    exp = expected("all_types.gguf")
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    assert keys == [kv["key"] for kv in exp["kv"]], "keys in insertion order"
    for kv in exp["kv"]:
        field = r.fields[kv["key"]]
        leaves, types = flatten(kv["type"], kv["value"])
        assert field.types[0] == VT[kv["type"]], kv["key"]
        if kv["type"] == "ARRAY" and not kv["value"]["value"]:
            # an empty array: the reader records only the outer type
            assert field_leaves(field) == [], kv["key"]
            assert int(field.parts[-1][0]) == 0, kv["key"]
            continue
        assert field.types == types, kv["key"]
        got = field_leaves(field)
        assert got == leaves, kv["key"]
        if kv["type"] in ("FLOAT32", "FLOAT64"):
            # exact bit pattern
            assert field.parts[-1].tobytes() == np.array([kv["value"]], dtype=NP[kv["type"]]).tobytes()


def test_every_tensor(written):
    r = gguf.GGUFReader(written)
    exp = expected("all_types.gguf")
    assert [t.name for t in r.tensors] == [t["name"] for t in exp["tensors"]]
    for t, et in zip(r.tensors, exp["tensors"]):
        assert int(t.tensor_type) == et["type_id"], t.name
        assert [int(x) for x in t.shape] == et["ne"], t.name
        assert t.n_bytes == et["nbytes"], t.name
        assert t.data_offset - r.data_offset == et["offset"], t.name
        assert t.data_offset % r.alignment == 0, t.name
        assert t.data.tobytes() == bytes.fromhex(et["hex"]), t.name
        if "values" in et:
            np.testing.assert_array_equal(t.data.astype(np.float64).ravel(), np.array(et["values"]))


def test_q8_0_dequantizes_like_reference(written):
    """The Q8_0 blocks we wrote dequantize, with gguf.quants, to the values the
    reference quantizer's own output dequantizes to (exact: same bytes)."""
    r = gguf.GGUFReader(written)
    t = next(t for t in r.tensors if t.name == "q8_0.mat")
    deq = gguf.quants.dequantize(t.data, gguf.GGMLQuantizationType.Q8_0)
    assert deq.shape == (2, 64)
    ref = gguf.GGUFReader(DATA / "all_types.gguf")
    rt = next(t for t in ref.tensors if t.name == "q8_0.mat")
    np.testing.assert_array_equal(deq, gguf.quants.dequantize(rt.data, gguf.GGMLQuantizationType.Q8_0))
