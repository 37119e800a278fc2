"""The embedding store: every photo's global and local embeddings, compressed, on disk, scored in one pass.

A new label must be scored against every photo at once (Eq. 3: global dot + top-k mean of the
patch dots), so the store keeps the local tokens in a form that is small *and* fast to dot with:

- global embedding: float16 (D values).
- local tokens: projected on a PCA basis of r dimensions (fitted once per store, from the first
  photos added), each dimension scaled by its own spread and rounded to 8 bits (stored as uint8
  with zero point 128). A token that reaches beyond the codes' range (a photo unlike the ones the
  basis was fitted on) is divided by its own factor t >= 1 first, kept as float16: nothing is ever
  clipped, and tokens like the fitted ones keep t = 1. A patch dot is then
  `offset(z) + t * (codes @ q(z))` with `q = scales * (components @ z)`: one small integer matrix
  product and one multiply. With r = 128 a photo at N = 196, D = 512 takes 26,512 bytes (limit
  asked: 65,536).

Scoring runs as a small ONNX Runtime graph (MatMulInteger -> TopK -> ReduceMean, + the global
dot): its uint8 x int8 kernels read the codes as they are, where numpy or torch would first
convert every code to float; that made it 3-4x faster here (docs/performance.md). The label's
query is rounded to 7 bits (+-63) per label, which keeps AVX2's 16-bit pair sums from saturating
(255 x 63 x 2 < 32,767) on every CPU.

Files in the store's folder:

    store.json    format, version, sizes, the model fingerprint          (written once, atomically)
    codec.npz     PCA mean, components and scales                       (written once, atomically)
    ids.bin       int64 per photo                                        (append only)
    global.bin    float16 [D] per photo                                  (append only)
    local.bin     uint8 [N, r] per photo (code + 128)                    (append only)
    scale.bin     float16 [N] per photo: each token's factor t            (append only)
    summary.bin   uint8 [S, r] per photo, and summary_scale.bin float16 [S]: S = 8 summary tokens
                  (k-means centroids of the photo's tokens), derived from local.bin and completed
                  from it whenever shorter (a crash, an older store): never the only copy of anything
    count         the number of committed photos, as text                (replaced atomically)
    blocks        one JSON line per append: its first row, its rows and the CRC-32 of each data
                  file's bytes for them (append only; written before `count`)
    verified      the data files' sizes and mtimes when last verified clean (or appended to since)

Search over a large store first scores the summary tokens (a max over 8 centroids stands in for the
top-k mean over N patches: N / 8 times less work), then scores the best candidates exactly
(`top_rows`); what it returns are the exact scores of `score_labels`.

Each field has its own file so that scoring reads contiguous memory-mapped blocks. An append
writes its rows, fsyncs the data files, then replaces `count` (write, fsync, rename, fsync the
folder). A crash in between leaves a tail beyond `count` that is ignored on open and
overwritten by the next append: what was committed is never lost.

Damage is noticed, never papered over: opening checks what is cheap (store.json, codec.npz, a
`count` that parses, data files that hold every committed row) and raises StoreDamaged naming the
file; `verify()` reads every committed block against its checksum (random bytes, a bad disk).
`EmbeddingStore.repair` rebuilds a damaged store from the blocks that are whole (the damaged folder
is kept aside, renamed): what it could not keep, the app computes again. Ids are integers the caller
gives (the app's photo ids); an id appended again supersedes its earlier record. One writer at a
time (the app's indexer); any number of readers, which see new photos after `refresh()`.
"""

import json
import mmap
import os
import shutil
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mkt_core.runtime.engine import cpu_count
from mkt_core.runtime.files import fsync_dir, read_json_object, remove_stale_temporaries, write_atomically

FORMAT = "mkt-embedding-store"
VERSION = 2  # 2: scale.bin (version 1 stores are upgraded on open: t = 1 for every token they hold)
CLIP_SIGMAS = 8.0  # codes span +-8 standard deviations of each PCA dimension; beyond, a token takes t > 1
ZERO_POINT = 128
SUMMARY_TOKENS = 8  # per photo, for finding candidates fast (see `top_rows`)
# Candidates are ranked on the summary tokens' first (largest-variance) PCA dimensions only: on the demo
# model's photos 16 of 128 find the same candidates as all 128 (8 do not); 32 keeps a margin, at a quarter
# of the work (docs/performance.md).
SUMMARY_DIMS = 32
SPREAD_FLOOR = 0.05  # the smallest per-dimension spread a codec assumes, as a fraction of the largest
QUERY_LEVELS = 63  # 7-bit query: see the module docstring


@dataclass
class LocalCodec:
    """PCA basis + per-dimension int8 scales for local tokens: e ~ mean + components.T @ (codes * scales)."""

    mean: np.ndarray  # [D] float32
    components: np.ndarray  # [r, D] float32, orthonormal rows
    scales: np.ndarray  # [r] float32

    @property
    def dims(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, local_emb: np.ndarray, dims: int = 128) -> "LocalCodec":
        """Fit on local tokens `[..., D]` (a few dozen photos are plenty); dims is capped at D."""
        x = np.asarray(local_emb, dtype=np.float32).reshape(-1, local_emb.shape[-1])
        if len(x) < 2:
            raise ValueError("fitting the local codec needs at least 2 local tokens")
        dims = min(dims, x.shape[1])
        mean = x.mean(axis=0)
        centred = (x - mean).astype(np.float64)
        # eigenvectors of the covariance, largest first (D x D: cheap whatever the sample size)
        values, vectors = np.linalg.eigh(centred.T @ centred / max(1, len(x) - 1))
        order = np.argsort(values)[::-1][:dims]
        components = vectors[:, order].T.astype(np.float32)
        spread = np.sqrt(np.clip(values[order], 0, None)).astype(np.float32)
        # a dimension the sample hardly uses still gets a step of a fair size: photos added later may use it
        floor = SPREAD_FLOOR * max(float(spread.max(initial=0.0)), 1e-12)
        scales = np.maximum(spread, floor) * CLIP_SIGMAS / 127.0
        return cls(mean.astype(np.float32), np.ascontiguousarray(components), scales.astype(np.float32))

    def encode(self, local_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`[..., D]` float -> (`[..., r]` uint8 codes (value + 128), `[...]` float16 token factors t)."""
        steps = ((np.asarray(local_emb, dtype=np.float32) - self.mean) @ self.components.T) / self.scales
        return _encode_steps(steps)

    def decode(self, codes: np.ndarray, token_scale: np.ndarray) -> np.ndarray:
        """(`[..., r]` uint8, `[...]` t) -> approximate `[..., D]` float32 (for heat maps; scoring never decodes)."""
        steps = (codes.astype(np.float32) - ZERO_POINT) * np.asarray(token_scale, dtype=np.float32)[..., None]
        flat = (steps * self.scales).reshape(-1, self.dims)  # one 2-D product: numpy's stacked one was 40x slower
        return (flat @ self.components + self.mean).reshape(*steps.shape[:-1], self.mean.shape[0])

    def query(self, label_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For labels `[L, D]`: (q int8 `[r, L]`, q_scale `[L]`, offset `[L]`) with
        patch dot ~ ((codes - 128) @ q) * q_scale + offset."""
        z = np.asarray(label_emb, dtype=np.float32)
        q = (self.components @ z.T) * self.scales[:, None]
        q_scale = np.maximum(np.abs(q).max(axis=0), 1e-30) / QUERY_LEVELS
        return np.rint(q / q_scale).astype(np.int8), q_scale.astype(np.float32), (z @ self.mean).astype(np.float32)


class StoreError(ValueError):
    """A store folder that cannot be used; the message names the file and the reason."""


class StoreDamaged(StoreError):
    """A store whose files were damaged or lost (not a program or user error); `EmbeddingStore.repair` heals it."""


DATA_FILES = ("ids", "global", "local", "scale")


class EmbeddingStore:
    """Append-only, memory-mapped store of compressed photo embeddings for one model."""

    def __init__(self, folder: Path, meta: dict, codec: LocalCodec | None, writable: bool):
        self.folder = folder
        self.meta = meta
        self.codec = codec
        self.writable = writable
        self.embed_dim = int(meta["embed_dim"])
        self.num_patches = int(meta["num_patches"])
        self.top_k = int(meta["top_k"])
        self.local_dims = int(meta["local_dims"])
        self.fingerprint = str(meta["fingerprint"])
        self.row_bytes = {"ids": 8, "global": 2 * self.embed_dim}
        if self.num_patches:
            self.row_bytes.update(local=self.num_patches * self.local_dims, scale=2 * self.num_patches)
        self._count = 0
        self._ids = np.zeros(0, dtype=np.int64)
        self._global: np.ndarray | None = None
        self._local: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._live: np.ndarray = np.zeros(0, dtype=np.int64)
        self._session: Any = None  # the ONNX Runtime scoring graph, built on first use
        self._summary_session: Any = None
        self._summary: np.ndarray | None = None  # [rows, S, r] uint8, completed on first use
        self._summary_scale: np.ndarray | None = None
        self._candidates: _Candidates | None = None  # what ranks candidates, in memory (see top_rows)
        self.refresh()

    # -- creating and opening -----------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | Path, embed_dim: int, num_patches: int, top_k: int, fingerprint: str,
               local_dims: int = 128, codec: LocalCodec | None = None) -> "EmbeddingStore":
        """A new, empty store. Without `codec` the first `append` fits one on its photos: give it
        a representative first batch (a few dozen photos)."""
        folder = Path(folder)
        if (folder / "store.json").exists():
            raise FileExistsError(f"{folder / 'store.json'}: a store already exists here")
        if num_patches and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        folder.mkdir(parents=True, exist_ok=True)
        local_dims = min(local_dims, embed_dim) if num_patches else 0
        meta = {"format": FORMAT, "version": VERSION, "embed_dim": embed_dim, "num_patches": num_patches,
                "top_k": top_k, "local_dims": local_dims, "fingerprint": fingerprint}
        for name in DATA_FILES:
            (folder / f"{name}.bin").touch()
        (folder / "blocks").touch()
        write_atomically(folder / "count", b"0\n")
        store = cls(folder, meta, None, writable=True)
        write_atomically(folder / "verified", json.dumps(store._stamp()).encode())
        if codec is not None:
            store._set_codec(codec)
        write_atomically(folder / "store.json", json.dumps(meta, indent=2).encode())
        return store

    @classmethod
    def for_bundle(cls, folder: str | Path, bundle, local_dims: int = 128) -> "EmbeddingStore":
        """Open the store in `folder`, or create it for `bundle`; refuse one made by another model."""
        folder = Path(folder)
        if not (folder / "store.json").exists() and _holds_data(folder):
            raise StoreDamaged(f"{folder / 'store.json'}: missing, but {folder} holds embeddings")
        if (folder / "store.json").exists():
            store = cls.open(folder)
            if store.fingerprint != bundle.fingerprint:
                raise StoreError(f"{folder / 'store.json'}: holds embeddings of model {store.fingerprint}, "
                                 f"not of {bundle.fingerprint}; use another folder for this model")
            return store
        return cls.create(folder, bundle.embed_dim, bundle.num_patches, bundle.top_k, bundle.fingerprint,
                          local_dims=local_dims)

    @classmethod
    def open(cls, folder: str | Path, writable: bool = True) -> "EmbeddingStore":
        folder = Path(folder)
        path = folder / "store.json"
        if not path.is_file():
            raise StoreError(f"{path}: missing: {folder} is not an embedding store")
        meta = read_json_object(path, StoreDamaged)
        if meta.get("format") != FORMAT:
            raise StoreDamaged(f"{path}: not an embedding store")
        if isinstance(meta.get("version"), int) and meta["version"] > VERSION:
            raise StoreError(f"{path}: store version {meta.get('version')!r}; this program reads version {VERSION}")
        if meta.get("version") not in (1, VERSION):
            raise StoreDamaged(f"{path}: store version {meta.get('version')!r} was never written by this program")
        for key in ("embed_dim", "num_patches", "top_k", "local_dims"):
            if not isinstance(meta.get(key), int) or meta[key] < (1 if key == "embed_dim" else 0):
                raise StoreDamaged(f"{path}: malformed: {key} is {meta.get(key)!r}")
        if meta.get("version") == 1 and writable:
            meta = _upgrade_from_version_1(folder, meta)
        codec = _read_codec(folder, meta)
        if writable:
            remove_stale_temporaries(folder)  # what a killed writer's atomic writes left
        return cls(folder, meta, codec, writable)

    def _set_codec(self, codec: LocalCodec) -> None:
        if codec.dims != self.local_dims or codec.mean.shape != (self.embed_dim,):
            raise ValueError(f"codec has {codec.dims} dims over {codec.mean.shape[0]}; the store wants "
                             f"{self.local_dims} over {self.embed_dim}")
        tmp = self.folder / "codec.tmp.npz"
        np.savez(tmp, mean=codec.mean, components=codec.components, scales=codec.scales)
        _fsync_file(tmp)
        os.replace(tmp, self.folder / "codec.npz")
        fsync_dir(self.folder)
        self.codec = codec

    # -- reading ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the committed count (another process may have appended) and re-map the data.

        Cheap when nothing was appended (one small read and a few stats), so a reader may call it before
        every query. The codec another process fitted with its first append is picked up too.
        """
        if self.codec is None and self.num_patches:
            self.codec = _read_codec(self.folder, self.meta)
        committed = _read_count(self.folder / "count")
        for name, size in self.row_bytes.items():  # every committed row must be there (disks lie; files get cut)
            if name == "scale" and self.meta["version"] == 1:
                continue
            path = self.folder / f"{name}.bin"
            try:
                held = path.stat().st_size // size
            except FileNotFoundError:
                raise StoreDamaged(f"{path}: missing ({committed} photos committed)") from None
            if held < committed:
                raise StoreDamaged(f"{path}: holds {held} photos where {committed} were committed (truncated)")
        if self.num_patches and committed and self.codec is None:
            raise StoreDamaged(f"{self.folder / 'codec.npz'}: missing ({committed} photos committed)")
        if committed == self._count and (committed == 0 or self._global is not None):
            return  # the store only grows: the same count is the same data
        self._count = committed
        if self._summary is not None and len(self._summary) != self._count:
            self._summary = self._summary_scale = self._candidates = None
        if self._count:
            n, d, r = self._count, self.embed_dim, self.local_dims
            self._ids = np.array(np.memmap(self.folder / "ids.bin", dtype="<i8", mode="r", shape=(n,)))
            self._global = np.memmap(self.folder / "global.bin", dtype="<f2", mode="r", shape=(n, d))
            if self.num_patches:
                self._local = np.memmap(self.folder / "local.bin", dtype=np.uint8, mode="r",
                                        shape=(n, self.num_patches, r))
                if self.meta["version"] == 1:  # read-only, not yet upgraded: every token has t = 1
                    self._scale = np.ones((n, self.num_patches), dtype="<f2")
                else:
                    self._scale = np.memmap(self.folder / "scale.bin", dtype="<f2", mode="r",
                                            shape=(n, self.num_patches))
            # the last row of each id is the live one
            _, last_from_end = np.unique(self._ids[::-1], return_index=True)
            self._live = np.sort(n - 1 - last_from_end)
        else:
            self._ids, self._global, self._local, self._scale = np.zeros(0, dtype=np.int64), None, None, None
            self._live = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._live)

    @property
    def ids(self) -> np.ndarray:
        """The stored photo ids, in the order of every score array this store returns."""
        return self._ids[self._live]

    def get(self, photo_id: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The stored (global [D], local [N, D] decoded from its codes) of one photo."""
        rows = self._live[self._ids[self._live] == photo_id]
        if len(rows) == 0:
            raise KeyError(photo_id)
        row = int(rows[0])
        local = None
        if self.num_patches:
            codec, codes, token_scale = self._local_stream()
            local = codec.decode(codes[row], token_scale[row])
        return np.asarray(self._globals()[row], dtype=np.float32), local

    def global_embeddings(self) -> np.ndarray:
        """Every photo's global embedding `[n, D]` as float32, in the order of `ids` ("more like this")."""
        if self._global is None:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        out = np.asarray(self._global[self._live], dtype=np.float32)
        release_pages((self._global,), *_span(self._live))
        return out

    def local_embeddings_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """The local tokens `[len(rows), N, D]` of the given rows, decoded from their codes in one product."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.num_patches or not len(rows):
            return np.zeros((len(rows), self.num_patches, self.embed_dim), dtype=np.float32)
        codec, codes, token_scale = self._local_stream()
        return codec.decode(np.asarray(codes[rows]), np.asarray(token_scale[rows]))

    def global_embeddings_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """The global embeddings `[len(rows), D]` of the given rows, as float32."""
        if self._global is None:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        rows = np.asarray(rows)
        out = np.asarray(self._global[rows], dtype=np.float32)
        if len(rows) > LARGE_PASS_ROWS:
            release_pages((self._global,), *_span(rows))
        return out

    # -- writing ------------------------------------------------------------------------------

    def append(self, ids: np.ndarray | list[int], global_emb: np.ndarray, local_emb: np.ndarray | None) -> None:
        """Add photos (ids [B], global [B, D], local [B, N, D]); durable when this returns."""
        if not self.writable:
            raise StoreError(f"{self.folder}: opened read-only")
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        global_emb = np.asarray(global_emb, dtype=np.float32)
        if global_emb.shape != (len(ids), self.embed_dim):
            raise ValueError(f"global_emb must be [{len(ids)}, {self.embed_dim}], got {list(global_emb.shape)}")
        if self.num_patches:
            if local_emb is None or local_emb.shape != (len(ids), self.num_patches, self.embed_dim):
                shape = None if local_emb is None else list(local_emb.shape)
                raise ValueError(f"local_emb must be [{len(ids)}, {self.num_patches}, {self.embed_dim}], got {shape}")
            self.refresh()  # another writer may have fitted the codec meanwhile: never fit a second one
            if self.codec is None:
                self._set_codec(LocalCodec.fit(local_emb, self.local_dims))
        codes, token_scale = None, None
        if self.num_patches and local_emb is not None and self.codec is not None:  # checked above
            codes, token_scale = self.codec.encode(local_emb)
        self.append_codes(ids, global_emb, codes, token_scale)

    def append_codes(self, ids: np.ndarray, global_emb: np.ndarray, codes: np.ndarray | None,
                     token_scale: np.ndarray | None = None) -> None:
        """Add photos already in stored form (global [B, D], local uint8 codes [B, N, r], factors t [B, N];
        t = 1 when not given)."""
        if not self.writable:
            raise StoreError(f"{self.folder}: opened read-only")
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not len(ids):
            return
        parts = {"ids": ids, "global": np.asarray(global_emb).astype("<f2")}
        if self.num_patches:
            if self.codec is None:
                raise StoreError(f"{self.folder}: local codes need the store's codec; append embeddings first")
            codes = np.asarray(codes)
            if codes.dtype != np.uint8 or codes.shape != (len(ids), self.num_patches, self.local_dims):
                raise ValueError(f"codes must be uint8 [{len(ids)}, {self.num_patches}, {self.local_dims}]")
            parts["local"] = codes
            token_scale = np.ones(codes.shape[:2]) if token_scale is None else np.asarray(token_scale)
            if token_scale.shape != codes.shape[:2] or not (token_scale >= 1).all():
                raise ValueError(f"token factors must be [{len(ids)}, {self.num_patches}], each at least 1")
            parts["scale"] = token_scale.astype("<f2")
        self.refresh()  # another writer may have committed meanwhile
        clean = self._verified_stamp() == self._stamp()  # verified and untouched since: stays verified
        checksums = {}
        for name, rows in parts.items():
            data = np.ascontiguousarray(rows).tobytes()
            checksums[name] = zlib.crc32(data)
            with open(self.folder / f"{name}.bin", "r+b") as f:
                f.seek(self._count * self.row_bytes[name])  # over any torn tail of an interrupted append
                f.write(data)
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
        _append_line(self.folder / "blocks", {"start": self._count, "rows": len(ids), "crc32": checksums})
        write_atomically(self.folder / "count", f"{self._count + len(ids)}\n".encode())
        if clean:
            write_atomically(self.folder / "verified", json.dumps(self._stamp()).encode())
        self.refresh()
        if self.num_patches:
            self._complete_summaries()  # derived data: a crash before this only delays it

    # -- damage -------------------------------------------------------------------------------

    def blocks(self) -> list[dict]:
        """The committed appends, in row order, with their checksums (see `_read_blocks`)."""
        return [b for b in _read_blocks(self.folder / "blocks") if b["start"] + b["rows"] <= self._count]

    def _stamp(self) -> dict:
        return {name: [(self.folder / f"{name}.bin").stat().st_size, (self.folder / f"{name}.bin").stat().st_mtime_ns]
                for name in self.row_bytes}

    def _verified_stamp(self) -> dict | None:
        try:
            return json.loads((self.folder / "verified").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def verify(self, full: bool = True) -> list[str]:
        """Read every committed row against its block's checksum; one line per damaged block and file.
        `full=False` skips the reading when no data file changed (size, mtime) since the last clean
        verification or append by this program: what an index run does, where `check` reads all.
        Rows from before checksums (a store of an older version) are counted as unverified."""
        if not full and self._verified_stamp() == self._stamp():
            return []
        problems = []
        blocks = self.blocks()
        for name, size in self.row_bytes.items():
            path = self.folder / f"{name}.bin"
            with open(path, "rb") as f:
                for block in blocks:
                    f.seek(block["start"] * size)
                    if zlib.crc32(f.read(block["rows"] * size)) != block["crc32"].get(name):
                        problems.append(f"{path}: photos {block['start']} to {block['start'] + block['rows'] - 1} "
                                        "do not match their checksum (damaged)")
        if not problems and self.writable:
            write_atomically(self.folder / "verified", json.dumps(self._stamp()).encode())
        return problems

    def unverified_rows(self) -> int:
        """Committed rows no checksum covers (written by a version before checksums)."""
        blocks = self.blocks()
        return self._count - (blocks[-1]["start"] + blocks[-1]["rows"] if blocks else 0)

    def cover_unverified(self) -> int:
        """Checksum the rows an older version wrote without them (as they are now); how many."""
        rows = self.unverified_rows()
        if rows and self.writable:
            start = self._count - rows
            checksums = {}
            for name, size in self.row_bytes.items():
                with open(self.folder / f"{name}.bin", "rb") as f:
                    f.seek(start * size)
                    checksums[name] = zlib.crc32(f.read(rows * size))
            _append_line(self.folder / "blocks", {"start": start, "rows": rows, "crc32": checksums})
        return rows if self.writable else 0

    @classmethod
    def repair(cls, folder: str | Path, bundle, full: bool = True) -> tuple["EmbeddingStore", list[str]]:
        """The store of `bundle` in `folder`, healed: (store, one line per problem found and what was done).

        A store that opens and verifies (`verify(full)`) is left alone. Otherwise a new one is built beside it from
        every block that is whole (all data files present, checksums right), and the damaged folder
        is renamed `<name>.damaged-<time>` (nothing is deleted). Rows that could not be kept are
        simply not in the new store: the app sees their photos as not embedded and embeds them again.
        """
        folder = Path(folder)
        try:
            store = cls.for_bundle(folder, bundle)
        except StoreDamaged as exc:
            problems = [str(exc)]
        else:
            problems = store.verify(full)
            if not problems:
                return store, []
        new = folder.with_name(folder.name + ".rebuilding")
        shutil.rmtree(new, ignore_errors=True)
        kept, total = _salvage(folder, new, bundle)
        aside = folder.with_name(f"{folder.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(folder, aside)
        os.replace(new, folder)
        fsync_dir(folder.parent)
        problems.append(f"{folder}: rebuilt with the {kept} of {total} photos that were whole; the rest will be "
                        f"embedded again; the damaged store is kept in {aside}")
        return cls.open(folder), problems

    # -- scoring ------------------------------------------------------------------------------

    def score_label(self, label_emb: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """Eq. 3 scores `[n]` of one label embedding `[D]` for every stored photo (order of `ids`)."""
        return self.score_labels(np.asarray(label_emb).reshape(1, -1), chunk=chunk)[:, 0]

    def score_labels(self, label_emb: np.ndarray, ids: np.ndarray | list[int] | None = None,
                     chunk: int = 1024, rows: np.ndarray | None = None,
                     local_emb: np.ndarray | None = None) -> np.ndarray:
        """Eq. 3 scores `[n, L]`: global dot + mean of the top-k patch dots, from the compressed data.

        The one score of the app: search, the stored scores, thresholds and exports all come from
        here. `ids` scores only those photos (rows in the order given; KeyError for one not stored),
        with the very same numbers as scoring everything. Runs over the memory-mapped data in chunks
        of `chunk` photos, so memory stays at a few tens of MB whatever the store's size.
        `local_emb` `[L, D]`: a query of the patch stream apart from the global one (a label adapted
        to a person's decisions); by default both streams use `label_emb`, as Eq. 3 does.
        """
        z = np.asarray(label_emb, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.embed_dim:
            raise ValueError(f"label embeddings must be [L, {self.embed_dim}], got {list(z.shape)}")
        local_z = z if local_emb is None else np.asarray(local_emb, dtype=np.float32)
        if local_z.shape != z.shape:
            raise ValueError(f"local queries must be {list(z.shape)} like the global ones, got {list(local_z.shape)}")
        if rows is None:
            rows = self._live if ids is None else self.rows_of(ids)
        out = np.empty((len(rows), len(z)), dtype=np.float32)
        if not len(rows):
            return out
        if not self.num_patches:  # CLIP: the global stream alone
            for start in range(0, len(rows), chunk):
                out[start:start + chunk] = self._block(self._globals(), rows, start, chunk).astype(np.float32) @ z.T
                if len(rows) > LARGE_PASS_ROWS:
                    release_pages((self._globals(),), *_span(rows[start:start + chunk]))
            return out
        session = self._scoring_session()
        codec, codes, token_scale = self._local_stream()
        q, q_scale, offset = codec.query(local_z)
        feed = {"q": q, "q_scale": q_scale[None], "z": np.ascontiguousarray(z.T), "offset": offset[None]}
        for start in range(0, len(rows), chunk):
            feed["codes"] = self._block(codes, rows, start, chunk).reshape(-1, self.local_dims)
            feed["token_scale"] = self._block(token_scale, rows, start, chunk).reshape(-1, 1)
            feed["global"] = self._block(self._globals(), rows, start, chunk)
            out[start:start + chunk] = session.run(None, feed)[0]
            if len(rows) > LARGE_PASS_ROWS:
                release_pages((codes, token_scale, self._globals()), *_span(rows[start:start + chunk]))
        return out

    def top_rows(self, label_emb: np.ndarray, rows: np.ndarray, limit: int, candidates: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The `limit` best of `rows` for one label, best first, with their exact scores `[limit]`.

        The summary tokens rank every row cheaply; the best `candidates` (default: 10 x limit, at
        least 2,000) are scored exactly and the best `limit` of those returned. A row outside the
        candidates can be missed only when its summary underrates it by that margin
        (benchmarks/library_scale.py measures recall against exact scoring).
        """
        rows = np.asarray(rows, dtype=np.int64)
        z = np.asarray(label_emb, dtype=np.float32).reshape(1, -1)
        candidates = max(candidates or 10 * limit, 2000)
        if not self.num_patches or len(rows) <= candidates:
            shortlist = rows
        else:
            proxy = self.summary_scores(z, rows)[:, 0]
            shortlist = np.sort(rows[np.argpartition(-proxy, candidates)[:candidates]])  # in file order: reads ahead
        exact = self.score_labels(z, rows=shortlist)[:, 0]
        order = np.lexsort((shortlist, -exact))[:limit]
        return shortlist[order], exact[order]

    def summary_scores(self, label_emb: np.ndarray, rows: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """`[len(rows), L]`: global dot + the best summary token's dot, the candidates' ranking."""
        self._complete_summaries()
        z = np.asarray(label_emb, dtype=np.float32)
        if self._summary_session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = cpu_count()
            options.inter_op_num_threads = 1
            graph = candidate_graph(SUMMARY_TOKENS)
            self._summary_session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        codec, _, _ = self._local_stream()
        found = self._candidates
        assert found is not None  # _complete_summaries made it
        head = found.codes.shape[-1]
        q, q_scale, offset = codec.query(z)
        zt = z.T
        z_scale = np.maximum(np.abs(zt).max(axis=0), 1e-30) / 127.0
        feed = {"q": np.ascontiguousarray(q[:head]), "q_scale": q_scale[None], "offset": offset[None],
                "gq": np.rint(zt / z_scale).astype(np.int8), "gq_scale": z_scale.astype(np.float32)[None]}
        out = np.empty((len(rows), len(z)), dtype=np.float32)
        for start in range(0, len(rows), chunk):
            feed["codes"] = self._block(found.codes, rows, start, chunk).reshape(-1, head)
            feed["token_scale"] = self._block(found.token_scale, rows, start, chunk).reshape(-1, 1)
            feed["global_codes"] = self._block(found.global_codes, rows, start, chunk)
            feed["global_scale"] = self._block(found.global_scale, rows, start, chunk).reshape(-1, 1)
            out[start:start + chunk] = self._summary_session.run(None, feed)[0]
        return out

    def _complete_summaries(self, chunk: int = 2048) -> None:
        """Summary tokens for every row: read what is on disk, compute (and, if writable, append) the rest."""
        have = 0
        path, scale_path = self.folder / "summary.bin", self.folder / "summary_scale.bin"
        if path.is_file() and scale_path.is_file():
            have = min(path.stat().st_size // (SUMMARY_TOKENS * self.local_dims),
                       scale_path.stat().st_size // (2 * SUMMARY_TOKENS), self._count)
        if self._summary is not None and len(self._summary) == self._count:
            return
        parts = []
        if have < self._count:
            _, codes, token_scale = self._local_stream()
            for start in range(have, self._count, chunk):
                stop = min(start + chunk, self._count)
                steps = ((np.asarray(codes[start:stop], dtype=np.float32) - ZERO_POINT)
                         * np.asarray(token_scale[start:stop], dtype=np.float32)[..., None])
                parts.append(_encode_steps(summary_tokens(steps, SUMMARY_TOKENS)))
                release_pages((codes, token_scale), start, stop)
        if parts and self.writable:
            for name, index in (("summary.bin", 0), ("summary_scale.bin", 1)):
                with open(self.folder / name, "ab") as f:
                    f.truncate(have * (SUMMARY_TOKENS * self.local_dims if index == 0 else 2 * SUMMARY_TOKENS))
                    for part in parts:
                        f.write(np.ascontiguousarray(part[index]).tobytes())
            parts, have = [], self._count
        stored_codes = (np.memmap(path, dtype=np.uint8, mode="r", shape=(have, SUMMARY_TOKENS, self.local_dims))
                        if have else np.zeros((0, SUMMARY_TOKENS, self.local_dims), dtype=np.uint8))
        stored_scale = (np.memmap(scale_path, dtype="<f2", mode="r", shape=(have, SUMMARY_TOKENS))
                        if have else np.zeros((0, SUMMARY_TOKENS), dtype="<f2"))
        if parts:  # read-only: kept in memory
            stored_codes = np.concatenate([stored_codes, *(p[0] for p in parts)])
            stored_scale = np.concatenate([stored_scale, *(p[1] for p in parts)])
        self._summary, self._summary_scale = stored_codes, stored_scale
        self._candidates = _Candidates.of(stored_codes, stored_scale, self._globals()[:len(stored_codes)])
        release_pages((stored_codes, stored_scale), 0, len(stored_codes))

    def patch_dots(self, photo_id: int, label_emb: np.ndarray) -> np.ndarray:
        """Each patch's dot `<z, e_j>` `[N]` for one photo, computed as the scoring graph computes it
        (the label's 7-bit query over the codes): its top-k mean is the local half of the photo's score."""
        row = int(self.rows_of([photo_id])[0])
        codec, codes, token_scale = self._local_stream()
        q, q_scale, offset = codec.query(np.asarray(label_emb, dtype=np.float32).reshape(1, -1))
        acc = (codes[row].astype(np.int32) - ZERO_POINT) @ q.astype(np.int32)
        return (acc[:, 0].astype(np.float32) * q_scale[0]) * token_scale[row].astype(np.float32) + offset[0]

    def _globals(self) -> np.ndarray:
        """The global embeddings `[rows, D]` (fp16, memory-mapped); empty before the first photo."""
        if self._global is None:
            return np.zeros((0, self.embed_dim), dtype="<f2")
        return self._global

    def _local_stream(self) -> tuple[LocalCodec, np.ndarray, np.ndarray]:
        """The codec, the patch codes `[rows, N, d]` and their per-token scales `[rows, N]` of a store
        with a local stream (a CLIP store with the global stream alone has none)."""
        if not self.num_patches or self.codec is None:
            raise StoreError(f"{self.folder}: no local stream (global-only model, or no photo stored yet)")
        if self._local is None or self._scale is None:
            n = (self.num_patches, self.local_dims)
            return self.codec, np.zeros((0, *n), dtype=np.uint8), np.zeros((0, n[0]), dtype="<f2")
        return self.codec, self._local, self._scale

    def score_row_range(self, label_emb: np.ndarray, start: int, stop: int, chunk: int = 1024,
                        local_emb: np.ndarray | None = None) -> np.ndarray:
        """Eq. 3 scores `[stop - start, L]` of the store's rows `start:stop`, superseded rows included
        (what a cache kept in row order extends itself with)."""
        return self.score_labels(label_emb, rows=np.arange(start, stop), chunk=chunk, local_emb=local_emb)

    @property
    def row_count(self) -> int:
        """Rows committed, superseded ones included: row numbers run from 0 to this."""
        return self._count

    def rows_of(self, ids: np.ndarray | list[int]) -> np.ndarray:
        """The live row of each id, in the order given; KeyError naming the first id not stored."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        live_ids = self._ids[self._live]
        order = np.argsort(live_ids, kind="stable")
        where = np.searchsorted(live_ids, ids, sorter=order)
        where = np.minimum(where, max(len(order) - 1, 0))
        found = order[where] if len(order) else np.zeros(len(ids), dtype=np.int64)
        missing = ~np.isin(ids, live_ids) if len(order) else np.ones(len(ids), dtype=bool)
        if missing.any():
            raise KeyError(int(ids[missing][0]))
        return self._live[found]

    @staticmethod
    def _block(data: np.ndarray, rows: np.ndarray, start: int, chunk: int) -> np.ndarray:
        """Rows `rows[start:start + chunk]` of a memory-mapped array: a plain slice when they are contiguous."""
        part = rows[start:start + chunk]
        if len(part) and part[-1] - part[0] == len(part) - 1:
            return np.asarray(data[part[0]:part[-1] + 1])
        return np.asarray(data[part])

    def _scoring_session(self):
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = cpu_count()
            options.inter_op_num_threads = 1
            graph = self._cached_scoring_graph(self.num_patches, min(self.top_k, self.num_patches))
            self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return self._session

    def _cached_scoring_graph(self, num_patches: int, k: int) -> bytes:
        """The scoring graph, kept in the store's folder: building it imports the `onnx` package, seconds of a
        command-line search otherwise. The file name carries a hash of the code that builds it, so a changed
        graph is never read stale; a read-only folder just builds it each time."""
        import hashlib
        import inspect

        try:
            source = inspect.getsource(scoring_graph)
        except (OSError, TypeError):  # no source to hash (a frozen build): build it
            return scoring_graph(num_patches, k)
        key = hashlib.sha1(f"{source}\0{num_patches}\0{k}".encode()).hexdigest()[:16]
        path = self.folder / f"scoring-{key}.onnx"
        if path.is_file():
            return path.read_bytes()
        graph = scoring_graph(num_patches, k)
        try:
            write_atomically(path, graph)
        except OSError:
            pass
        return graph


def _model_bytes(graph) -> bytes:
    """An ONNX graph as the model bytes ONNX Runtime loads (opset 18, IR 9: what this onnxruntime reads)."""
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model.SerializeToString()


@dataclass
class _Candidates:
    """What ranks the candidates of a search, kept in memory: each row's summary tokens on their first
    SUMMARY_DIMS dimensions with float32 factors, and its global embedding in int8 with a float32 factor
    (a proxy only: the shortlist is scored exactly). 300 bytes a photo at D = 128, 690 at D = 512."""

    codes: np.ndarray  # uint8 [rows, S, SUMMARY_DIMS]
    token_scale: np.ndarray  # float32 [rows, S]
    global_codes: np.ndarray  # uint8 [rows, D], 128 + round(g / global_scale)
    global_scale: np.ndarray  # float32 [rows]

    @classmethod
    def of(cls, summary: np.ndarray, summary_scale: np.ndarray, global_: np.ndarray,
           chunk: int = 65536) -> "_Candidates":
        rows, dims = len(summary), global_.shape[1]
        global_codes = np.empty((rows, dims), dtype=np.uint8)
        global_scale = np.empty(rows, dtype=np.float32)
        for start in range(0, rows, chunk):
            # a non-finite embedding an older version stored ranks by its local part until it is embedded again
            g = np.nan_to_num(np.asarray(global_[start:start + chunk], dtype=np.float32), nan=0.0, posinf=0.0,
                              neginf=0.0)
            scale = np.maximum(np.abs(g).max(axis=1), 1e-30) / 127.0
            global_codes[start:start + chunk] = np.rint(g / scale[:, None]) + ZERO_POINT
            global_scale[start:start + chunk] = scale
            release_pages((global_,), start, start + chunk)
        return cls(np.ascontiguousarray(summary[:, :, :SUMMARY_DIMS]),
                   np.asarray(summary_scale, dtype=np.float32), global_codes, global_scale)


# A pass over more rows than this lets go of the pages it read (release_pages); a search's shortlist keeps
# them: faulting them in again on the next search cost it more (58 ms at 100,000 photos) than they weigh.
LARGE_PASS_ROWS = 20_000


def release_pages(arrays, start: int, stop: int) -> None:
    """Let go of the mapped file pages of rows `start:stop` in these memory-mapped arrays: they stay in the
    system's file cache, but leave this process's resident memory. A pass over every photo of a 10 GB
    store otherwise counts the whole store in the app's memory (peak RSS), all of it mapped at once.
    Arrays that are not memory-mapped, and systems without madvise, are left as they are."""
    if stop <= start or not hasattr(mmap, "MADV_DONTNEED"):
        return
    for array in arrays:
        mapping = getattr(array, "_mmap", None)
        if mapping is None or array.ndim == 0 or not array.shape[0]:
            continue
        head = array.offset % mmap.ALLOCATIONGRANULARITY  # where row 0 is in the mapping
        row_bytes = array.strides[0]
        begin = (head + start * row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
        end = min(head + stop * row_bytes, len(mapping))
        if end > begin:
            mapping.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def _span(rows: np.ndarray) -> tuple[int, int]:
    """The row range `start, stop` that holds these rows (sorted or not)."""
    return (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, 0)


def candidate_graph(tokens: int) -> bytes:
    """The ONNX graph of the candidates' ranking [B, L]: the int8 global dot plus the best summary token's
    dot, from codes [B*S, h] uint8 with factors [B*S, 1] float32, the label's query q [h, L] int8 with
    q_scale [1, L], global codes [B, D] uint8 with factors [B, 1] float32, the label at int8 gq [D, L] with
    gq_scale [1, L], and offset [1, L] (per-label factors as [1, L]: see scoring_graph)."""
    from onnx import TensorProto, helper

    info = helper.make_tensor_value_info
    nodes = [
        helper.make_node("MatMulInteger", ["codes", "q", "zero_point"], ["acc"]),  # [B*S, L] int32
        helper.make_node("Cast", ["acc"], ["acc_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["acc_f", "q_scale"], ["dots_unscaled"]),
        helper.make_node("Mul", ["dots_unscaled", "token_scale"], ["dots"]),
        helper.make_node("Shape", ["global_codes"], ["batch"], start=0, end=1),
        helper.make_node("Concat", ["batch", "tokens_minus_one"], ["shape3"], axis=0),
        helper.make_node("Reshape", ["dots", "shape3"], ["dots3"]),  # [B, S, L]
        helper.make_node("ReduceMax", ["dots3", "axis1"], ["local"], keepdims=0),  # [B, L]
        helper.make_node("MatMulInteger", ["global_codes", "gq", "zero_point"], ["gacc"]),  # [B, L] int32
        helper.make_node("Cast", ["gacc"], ["gacc_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["gacc_f", "gq_scale"], ["global_unscaled"]),
        helper.make_node("Mul", ["global_unscaled", "global_scale"], ["global_scores"]),
        helper.make_node("Add", ["global_scores", "local"], ["both"]),
        helper.make_node("Add", ["both", "offset"], ["scores"]),
    ]
    constants = [
        helper.make_tensor("zero_point", TensorProto.UINT8, [], [ZERO_POINT]),
        helper.make_tensor("tokens_minus_one", TensorProto.INT64, [2], [tokens, -1]),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(
        nodes, "candidate_scores",
        [info("codes", TensorProto.UINT8, ["BS", "h"]), info("q", TensorProto.INT8, ["h", "L"]),
         info("q_scale", TensorProto.FLOAT, [1, "L"]), info("token_scale", TensorProto.FLOAT, ["BS", 1]),
         info("global_codes", TensorProto.UINT8, ["B", "D"]), info("gq", TensorProto.INT8, ["D", "L"]),
         info("gq_scale", TensorProto.FLOAT, [1, "L"]), info("global_scale", TensorProto.FLOAT, ["B", 1]),
         info("offset", TensorProto.FLOAT, [1, "L"])],
        [info("scores", TensorProto.FLOAT, ["B", "L"])], initializer=constants)
    return _model_bytes(graph)


def scoring_graph(num_patches: int, k: int) -> bytes:
    """The ONNX graph of Eq. 3 on stored data: scores [B, L] from codes [B*N, r] uint8 with each token's
    factor t [B*N, 1] float16, the label's 7-bit query q [r, L] int8 with q_scale [1, L], global [B, D]
    float16, z [D, L] and offset [1, L]. The per-label factors are [1, L], not [L]: ONNX Runtime
    broadcasts a [L] vector over [B*N, L] one row at a time, which took a third of the graph's time at
    L = 1 (a typed search); [1, L] takes its fast path, with the very same numbers."""
    from onnx import TensorProto, helper

    info = helper.make_tensor_value_info
    nodes = [
        helper.make_node("MatMulInteger", ["codes", "q", "zero_point"], ["acc"]),  # [B*N, L] int32
        helper.make_node("Cast", ["acc"], ["acc_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["acc_f", "q_scale"], ["dots_unscaled"]),
        helper.make_node("Cast", ["token_scale"], ["token_scale_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["dots_unscaled", "token_scale_f"], ["dots"]),  # each token's factor t
        helper.make_node("Shape", ["global"], ["batch"], start=0, end=1),
        helper.make_node("Concat", ["batch", "patches_minus_one"], ["shape3"], axis=0),
        helper.make_node("Reshape", ["dots", "shape3"], ["dots3"]),  # [B, N, L]
        helper.make_node("TopK", ["dots3", "k"], ["top", "top_index"], axis=1, sorted=0),  # a mean needs no order
        helper.make_node("ReduceMean", ["top", "axis1"], ["local"], keepdims=0),  # [B, L]
        helper.make_node("Cast", ["global"], ["global_f"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["global_f", "z"], ["global_scores"]),
        helper.make_node("Add", ["global_scores", "local"], ["both"]),
        helper.make_node("Add", ["both", "offset"], ["scores"]),
    ]
    constants = [
        helper.make_tensor("zero_point", TensorProto.UINT8, [], [ZERO_POINT]),
        helper.make_tensor("patches_minus_one", TensorProto.INT64, [2], [num_patches, -1]),
        helper.make_tensor("k", TensorProto.INT64, [1], [k]),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(
        nodes, "eq3_scores",
        [info("codes", TensorProto.UINT8, ["BN", "r"]), info("q", TensorProto.INT8, ["r", "L"]),
         info("q_scale", TensorProto.FLOAT, [1, "L"]), info("token_scale", TensorProto.FLOAT16, ["BN", 1]),
         info("global", TensorProto.FLOAT16, ["B", "D"]),
         info("z", TensorProto.FLOAT, ["D", "L"]), info("offset", TensorProto.FLOAT, [1, "L"])],
        [info("scores", TensorProto.FLOAT, ["B", "L"])], initializer=constants)
    return _model_bytes(graph)


def summary_tokens(steps: np.ndarray, count: int, iterations: int = 4) -> np.ndarray:
    """k-means centroids `[B, count, r]` of each photo's tokens `[B, N, r]` (a few Lloyd steps from
    tokens spread over the patch grid): where the photo's distinct things are, in a handful of vectors."""
    b, n, _ = steps.shape
    count = min(count, n)
    centroids = steps[:, np.linspace(0, n - 1, count).round().astype(int)].copy()
    for _ in range(iterations):
        distance = (np.einsum("bnr,bnr->bn", steps, steps)[:, :, None] - 2 * steps @ centroids.transpose(0, 2, 1)
                    + np.einsum("bcr,bcr->bc", centroids, centroids)[:, None, :])
        members = np.zeros((b, n, count), dtype=np.float32)
        np.put_along_axis(members, distance.argmin(axis=2)[..., None], 1.0, axis=2)
        sizes = members.sum(axis=1)[..., None]
        centroids = np.where(sizes > 0, members.transpose(0, 2, 1) @ steps / np.maximum(sizes, 1), centroids)
    return centroids.astype(np.float32)


def _encode_steps(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values in code steps `[..., r]` -> (uint8 codes, float16 factors t >= 1), as tokens are stored.
    t is rounded up to a float16, so that the stored factor is the one the codes were made with."""
    reach = np.abs(steps).max(axis=-1) / 127.0
    t = np.maximum(reach, 1.0).astype(np.float16)
    t = np.where(t.astype(np.float32) < reach, np.nextafter(t, np.float16(np.inf)), t)
    codes = np.clip(np.rint(steps / t[..., None].astype(np.float32)), -127, 127) + ZERO_POINT
    return codes.astype(np.uint8), t


def bytes_per_photo(embed_dim: int, num_patches: int, local_dims: int = 128) -> int:
    """Disk bytes of one photo: id + float16 global + int8 local codes + a float16 factor per token,
    and its summary tokens (the same form)."""
    tokens = num_patches + min(SUMMARY_TOKENS, num_patches)
    return 8 + 2 * embed_dim + (tokens * (min(local_dims, embed_dim) + 2) if num_patches else 0)


def _upgrade_from_version_1(folder: Path, meta: dict) -> dict:
    """A version-1 store has no scale.bin: its tokens were all coded with t = 1. Write those ones for
    the committed rows, then the new version (a crash in between redoes it on the next open)."""
    if int(meta["num_patches"]):
        count = _read_count(folder / "count")
        ones = np.ones((count, int(meta["num_patches"])), dtype="<f2")
        with open(folder / "scale.bin", "wb") as f:
            f.write(ones.tobytes())
            f.flush()
            os.fsync(f.fileno())
    meta = {**meta, "version": VERSION}
    write_atomically(folder / "store.json", json.dumps(meta, indent=2).encode())
    return meta


def _read_count(path: Path) -> int:
    try:
        count = int(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        raise StoreDamaged(f"{path}: missing (the number of committed photos)") from None
    except (ValueError, UnicodeDecodeError):
        raise StoreDamaged(f"{path}: malformed record count") from None
    if count < 0:
        raise StoreDamaged(f"{path}: negative record count {count}")
    return count


def _read_codec(folder: Path, meta: dict) -> LocalCodec | None:
    path = folder / "codec.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            codec = LocalCodec(data["mean"], data["components"], data["scales"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise StoreDamaged(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    dims, d = int(meta["local_dims"]), int(meta["embed_dim"])
    if codec.components.shape != (dims, d) or codec.mean.shape != (d,) or codec.scales.shape != (dims,):
        raise StoreDamaged(f"{path}: holds a codec of {list(codec.components.shape)}, not [{dims}, {d}]")
    return codec


def _holds_data(folder: Path) -> bool:
    """Whether a folder without store.json still holds embeddings (then it is damaged, not new)."""
    return any((folder / f"{name}.bin").is_file() and (folder / f"{name}.bin").stat().st_size
               for name in DATA_FILES) or (folder / "codec.npz").exists()


def _append_line(path: Path, record: dict) -> None:
    with open(path, "ab") as f:
        f.write((json.dumps(record, separators=(",", ":")) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def _read_blocks(path: Path) -> list[dict]:
    """The appends recorded in `blocks`, as one chain from row 0: a line that starts before the end of
    the chain (an append redone after a crash) replaces what followed; a torn last line is ignored."""
    chain: list[dict] = []
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            block = json.loads(line)
            start, rows = int(block["start"]), int(block["rows"])
            dict(block["crc32"])
        except (ValueError, KeyError, TypeError):
            continue
        while chain and chain[-1]["start"] >= start:
            chain.pop()
        if start == (chain[-1]["start"] + chain[-1]["rows"] if chain else 0) and rows > 0:
            chain.append(block)
    return chain


def _salvage(old: Path, new: Path, bundle) -> tuple[int, int]:
    """Copy into a new store at `new` every row of `old` that is whole: (rows kept, rows committed)."""
    try:
        meta = json.loads((old / "store.json").read_text(encoding="utf-8"))
        dims = int(meta["local_dims"])
        codec = _read_codec(old, meta) if int(meta["num_patches"]) else None
    except (OSError, ValueError, KeyError, TypeError, StoreDamaged):
        meta, codec, dims = None, None, 128
    fresh = EmbeddingStore.create(new, bundle.embed_dim, bundle.num_patches, bundle.top_k, bundle.fingerprint,
                                  local_dims=dims, codec=codec)
    if meta is None or (fresh.num_patches and codec is None) or meta.get("fingerprint") != bundle.fingerprint:
        return 0, 0
    sizes = {}
    for name, size in fresh.row_bytes.items():
        path = old / f"{name}.bin"
        sizes[name] = path.stat().st_size // size if path.is_file() else 0
    blocks = _read_blocks(old / "blocks")
    if not blocks:  # an older store, without checksums: every row that all the files hold
        rows = min(sizes.values())
        blocks = [{"start": 0, "rows": rows, "crc32": {}}] if rows else []
    total = blocks[-1]["start"] + blocks[-1]["rows"] if blocks else 0
    kept = 0
    for block in blocks:
        start, rows = block["start"], block["rows"]
        parts = {}
        for name, size in fresh.row_bytes.items():
            if sizes[name] < start + rows:
                break
            with open(old / f"{name}.bin", "rb") as f:
                f.seek(start * size)
                data = f.read(rows * size)
            if block["crc32"] and zlib.crc32(data) != block["crc32"].get(name):
                break
            parts[name] = data
        if len(parts) != len(fresh.row_bytes):
            continue
        ids = np.frombuffer(parts["ids"], dtype="<i8")
        glob = np.frombuffer(parts["global"], dtype="<f2").reshape(rows, fresh.embed_dim)
        codes = scale = None
        if fresh.num_patches:
            codes = np.frombuffer(parts["local"], dtype=np.uint8).reshape(rows, fresh.num_patches, fresh.local_dims)
            scale = np.frombuffer(parts["scale"], dtype="<f2").reshape(rows, fresh.num_patches)
            if not (np.isfinite(scale).all() and (scale >= 1).all()):
                continue
        if not np.isfinite(glob).all():
            continue
        fresh.append_codes(ids, glob, codes, scale)
        kept += rows
    return kept, total


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
