#!/usr/bin/env python3
"""make_gguf_fixtures.py: writes the GGUF test fixtures and their expectations.

Every file is written by the reference implementation, the `gguf` Python
package that ships with llama.cpp (GGUFWriter, gguf.quants), so the C reader
in src/format/gguf.c is tested against files it did not write itself. The
expected values go to tests/data/gguf/expected.json; tests/unit/test_gguf.c
and tests/py/test_gguf_writer.py read it.

Files (all small, committed):
  all_types.gguf   every metadata value type (u8..f64, bool, strings with
                   UTF-8, an empty string and an embedded NUL, arrays of every
                   scalar type and of strings, an empty array, an array of
                   arrays), general.alignment = 64, and F32/F16/Q8_0 tensors
                   of 1 to 4 dimensions with known content
  minimal.gguf     one F32 tensor, default alignment; its last tensor ends the
                   file exactly, so every proper prefix is truncated
  v2.gguf          minimal.gguf with the version field set to 2 (v2 and v3
                   share the little-endian layout; GGUFWriter writes only v3)
  no_tensors.gguf  metadata only: a small tokenizer-like vocabulary

The fixtures are also copied as seeds for the fuzz target into
tests/data/fuzz/fuzz_gguf/ (the regress_*.gguf files there are inputs the
fuzzer once failed on, kept by hand; this script leaves them alone).

Run: python tools/golden/make_gguf_fixtures.py   (with the project .venv or
any Python that has gguf and numpy)
JSON encoding of a value of GGUF type T (recursive):
  integers     number; UINT64/INT64 as decimal strings (beyond 2^53)
  FLOAT32/64   number, the exact double of the stored value
  BOOL         true/false
  STRING       hex of the UTF-8 bytes (exact even with NUL)
  ARRAY        {"elem_type": T, "value": [encoded elements]}
"""
import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFValueType as VT, GGMLQuantizationType as QT

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "gguf"
SEEDS = ROOT / "tests" / "data" / "fuzz" / "fuzz_gguf"


class FixtureWriter(gguf.GGUFWriter):
    """GGUFWriter that also packs empty arrays (the stock writer refuses them,
    but the format allows them and llama.cpp reads them)."""

    def _pack_val(self, val, vtype, add_vtype, sub_type=None):
        if vtype == VT.ARRAY and len(val) == 0:
            out = self._pack("I", vtype) if add_vtype else b""
            return out + self._pack("I", sub_type if sub_type is not None else VT.INT32) + self._pack("Q", 0)
        return super()._pack_val(val, vtype, add_vtype, sub_type=sub_type)


NP_SCALAR = {
    VT.UINT8: np.uint8, VT.INT8: np.int8, VT.UINT16: np.uint16, VT.INT16: np.int16,
    VT.UINT32: np.uint32, VT.INT32: np.int32, VT.FLOAT32: np.float32,
    VT.UINT64: np.uint64, VT.INT64: np.int64, VT.FLOAT64: np.float64,
}


def encode(vtype, val, sub_type=None):
    """The JSON form of a value as stored (see the module docstring)."""
    if vtype == VT.STRING:
        return (val.encode("utf-8") if isinstance(val, str) else bytes(val)).hex()
    if vtype == VT.BOOL:
        return bool(val)
    if vtype in (VT.UINT64, VT.INT64):
        return str(int(val))
    if vtype in (VT.FLOAT32, VT.FLOAT64):
        return float(NP_SCALAR[vtype](val))
    if vtype == VT.ARRAY:
        et = sub_type if sub_type is not None else (VT.INT32 if len(val) == 0 else VT.get_type(val[0]))
        elems = []
        for v in val:
            # nested arrays: inner element type as the stock writer infers it
            elems.append(encode(et, v))
        return {"elem_type": et.name, "value": elems}
    return int(val)


class Fixture:
    def __init__(self, name, arch, alignment=None):
        self.name = name
        self.w = FixtureWriter(OUT / name, arch)
        self.kv = [{"key": "general.architecture", "type": "STRING", "value": encode(VT.STRING, arch)}]
        self.tensors = []
        self.alignment = 32
        if alignment is not None:
            self.w.add_custom_alignment(alignment)
            self.alignment = alignment
            self.kv.append({"key": "general.alignment", "type": "UINT32", "value": alignment})

    def add(self, key, vtype, val, sub_type=None):
        self.w.add_key_value(key, val, vtype, sub_type=sub_type)
        self.kv.append({"key": key, "type": vtype.name, "value": encode(vtype, val, sub_type)})

    def tensor(self, name, arr, qtype=None):
        """arr: float32 values, numpy shape (outer..inner); stored as qtype."""
        arr = np.asarray(arr, dtype=np.float32)
        if qtype is None or qtype == QT.F32:
            data, tname = arr, "F32"
        elif qtype == QT.F16:
            data, tname = arr.astype(np.float16), "F16"
        else:
            data, tname = gguf.quants.quantize(arr, qtype), qtype.name
        if data.dtype == np.uint8:
            self.w.add_tensor(name, data, raw_dtype=qtype)
        else:
            self.w.add_tensor(name, data)
        entry = {"name": name, "type": tname, "type_id": int(qtype if qtype is not None else QT.F32),
                 "ne": list(reversed(arr.shape)), "nbytes": int(data.nbytes),
                 "hex": data.tobytes().hex()}
        if data.dtype != np.uint8:
            entry["values"] = [float(x) for x in data.astype(np.float64).ravel()]
        self.tensors.append(entry)

    def finish(self, version=3):
        self.w.write_header_to_file()
        self.w.write_kv_data_to_file()
        self.w.write_tensors_to_file()
        self.w.close()
        path = OUT / self.name
        return self.describe(path, version)

    def describe(self, path, version):
        # Offsets come from the reference reader, not from our own arithmetic.
        r = gguf.GGUFReader(path)
        for t, rt in zip(self.tensors, r.tensors):
            assert t["name"] == rt.name
            t["offset"] = int(rt.data_offset - r.data_offset)
        return {"file": path.name, "version": version, "alignment": self.alignment,
                "size": path.stat().st_size, "data_offset": int(r.data_offset),
                "kv": self.kv, "tensors": self.tensors}


def all_types():
    f = Fixture("all_types.gguf", "fixture", alignment=64)
    f.add("test.u8", VT.UINT8, 255)
    f.add("test.i8", VT.INT8, -128)
    f.add("test.u16", VT.UINT16, 65535)
    f.add("test.i16", VT.INT16, -32768)
    f.add("test.u32", VT.UINT32, 4294967295)
    f.add("test.i32", VT.INT32, -2147483648)
    f.add("test.f32", VT.FLOAT32, 3.14159265)
    f.add("test.u64", VT.UINT64, 2**64 - 1)
    f.add("test.i64", VT.INT64, -2**63)
    f.add("test.f64", VT.FLOAT64, 2.718281828459045)
    f.add("test.bool_true", VT.BOOL, True)
    f.add("test.bool_false", VT.BOOL, False)
    f.add("test.u32_small", VT.UINT32, 7)
    f.add("test.i32_small", VT.INT32, -7)
    f.add("test.str", VT.STRING, "hello")
    f.add("test.str_utf8", VT.STRING, "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001f999")
    f.add("test.str_empty", VT.STRING, "")
    f.add("test.str_nul", VT.STRING, "a\0b")
    f.add("test.arr_u8", VT.ARRAY, [0, 1, 254, 255], VT.UINT8)
    f.add("test.arr_i8", VT.ARRAY, [-128, -1, 0, 127], VT.INT8)
    f.add("test.arr_u16", VT.ARRAY, [0, 65535], VT.UINT16)
    f.add("test.arr_i16", VT.ARRAY, [-32768, 32767], VT.INT16)
    f.add("test.arr_u32", VT.ARRAY, [0, 1, 4294967295], VT.UINT32)
    f.add("test.arr_i32", VT.ARRAY, [1, -2, 3, -2147483648, 2147483647])
    f.add("test.arr_f32", VT.ARRAY, [0.5, -1.25, 1e-3, -0.0, 3.4e38])
    f.add("test.arr_u64", VT.ARRAY, [0, 2**64 - 1], VT.UINT64)
    f.add("test.arr_i64", VT.ARRAY, [-2**63, 2**63 - 1], VT.INT64)
    f.add("test.arr_f64", VT.ARRAY, [1.0 / 3.0, -1e300], VT.FLOAT64)
    f.add("test.arr_bool", VT.ARRAY, [True, False, True])
    f.add("test.arr_str", VT.ARRAY, ["<s>", "", "h\u00e9llo", "\u2581the", "a\0b", "</s>"])
    f.add("test.arr_empty", VT.ARRAY, [], VT.INT32)
    f.add("test.arr_str_empty", VT.ARRAY, [], VT.STRING)
    f.add("test.arr_nested", VT.ARRAY, [[1, 2], [3], [4, 5, 6]])
    f.add("test.arr_nested_str", VT.ARRAY, [["x", "yz"], ["w"]])

    rng = np.random.default_rng(1234)
    f.tensor("f32.vec", np.array([1.0, -2.5, 0.0, 1e-7, 65504.0], dtype=np.float32))
    f.tensor("f32.mat", (np.arange(12, dtype=np.float32) * 0.5 - 3.0).reshape(3, 4))
    f.tensor("f16.mat", (np.arange(16, dtype=np.float32) * 0.25 - 2.0).reshape(2, 8), QT.F16)
    f.tensor("q8_0.mat", rng.standard_normal((2, 64)).astype(np.float32), QT.Q8_0)
    f.tensor("f32.3d", np.arange(12, dtype=np.float32).reshape(2, 3, 2))
    f.tensor("f16.4d", (np.arange(16, dtype=np.float32) - 8.0).reshape(2, 2, 2, 2), QT.F16)
    return f.finish()


def minimal():
    f = Fixture("minimal.gguf", "tiny")
    # 8 floats = 32 bytes = one alignment unit: nothing follows the last byte
    # of tensor data, so every proper prefix of the file is truncated.
    f.tensor("w", np.arange(8, dtype=np.float32) * 0.5)
    return f.finish()


def v2(minimal_desc):
    src, dst = OUT / "minimal.gguf", OUT / "v2.gguf"
    data = bytearray(src.read_bytes())
    assert data[4:8] == struct.pack("<I", 3)
    data[4:8] = struct.pack("<I", 2)
    dst.write_bytes(bytes(data))
    d = dict(minimal_desc)
    d.update(file="v2.gguf", version=2)
    return d


def no_tensors():
    f = Fixture("no_tensors.gguf", "llama")
    f.add("tokenizer.ggml.model", VT.STRING, "llama")
    tokens = ["<unk>", "<s>", "</s>", "\u2581the", "\u2581a", "\u2581of", "ing", "\u2581\u65e5", "<0x0A>", "!"]
    f.add("tokenizer.ggml.tokens", VT.ARRAY, tokens)
    f.add("tokenizer.ggml.scores", VT.ARRAY, [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0])
    f.add("tokenizer.ggml.token_type", VT.ARRAY, [2, 3, 3, 1, 1, 1, 1, 1, 6, 1])
    f.add("tokenizer.ggml.bos_token_id", VT.UINT32, 1)
    f.add("tokenizer.ggml.eos_token_id", VT.UINT32, 2)
    return f.finish()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    files = [all_types()]
    m = minimal()
    files += [m, v2(m), no_tensors()]
    doc = {"generator": "tools/golden/make_gguf_fixtures.py",
           "gguf_package": getattr(gguf, "__version__", None) or _pkg_version(),
           "files": files}
    with open(OUT / "expected.json", "w", encoding="utf-8") as fp:
        json.dump(doc, fp, indent=1, ensure_ascii=False)
        fp.write("\n")
    SEEDS.mkdir(parents=True, exist_ok=True)
    for d in files:
        if d["size"] <= 4096:
            shutil.copyfile(OUT / d["file"], SEEDS / d["file"])
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(files)} fixtures + expected.json to {OUT} ({total} bytes)")


def _pkg_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
