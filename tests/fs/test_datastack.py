"""The libraries people reach a file system through, each on a real cluster via sector://.

The URLs carry only ``host:port`` and the path: the user, password and
certificate come from the environment, as they would for a person who set
``SECTOR_PASSWORD`` once (``sector_env``).
"""

from __future__ import annotations

import warnings

import pytest

from sector.fs import SectorFileSystem

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

pytestmark = pytest.mark.usefixtures("sector_env")


def frame():
    return pd.DataFrame(
        {"city": ["Oslo", "Lima", "Pune", "Oslo"], "temp": [3.5, 19.0, 31.2, 4.1], "n": range(4)}
    )


def test_pandas_csv_round_trip(url: str) -> None:
    frame().to_csv(f"{url}/weather.csv", index=False)
    back = pd.read_csv(f"{url}/weather.csv")
    pd.testing.assert_frame_equal(back, frame())


def test_pandas_parquet_round_trip(url: str, fs: SectorFileSystem, workdir: str) -> None:
    frame().to_parquet(f"{url}/weather.parquet")
    assert fs.info(f"{workdir}/weather.parquet")["size"] > 0
    back = pd.read_parquet(f"{url}/weather.parquet")
    pd.testing.assert_frame_equal(back, frame())
    only = pd.read_parquet(f"{url}/weather.parquet", columns=["temp"])
    assert list(only.columns) == ["temp"]


def test_pyarrow_dataset_through_pyfilesystem(fs: SectorFileSystem, workdir: str) -> None:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    arrow_fs = PyFileSystem(FSSpecHandler(fs))
    table = pa.Table.from_pandas(frame(), preserve_index=False)
    ds.write_dataset(
        table,
        f"{workdir}/ds",
        filesystem=arrow_fs,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("city", pa.string())]), flavor="hive"),
    )
    assert fs.isdir(f"{workdir}/ds/city=Oslo")
    dataset = ds.dataset(
        f"{workdir}/ds", filesystem=arrow_fs, format="parquet", partitioning="hive"
    )
    oslo = dataset.to_table(filter=ds.field("city") == "Oslo").to_pandas()
    assert sorted(oslo["temp"]) == [3.5, 4.1]
    assert dataset.count_rows() == 4
    pq.write_table(table, f"{workdir}/one.parquet", filesystem=arrow_fs)
    assert pq.read_table(f"{workdir}/one.parquet", filesystem=arrow_fs).num_rows == 4


def test_dask_reads_a_multi_file_csv_dataset(url: str, fs: SectorFileSystem, workdir: str) -> None:
    dd = pytest.importorskip("dask.dataframe")
    import dask

    for part in range(3):
        rows = pd.DataFrame({"part": [part] * 5, "value": range(part * 5, part * 5 + 5)})
        fs.pipe_file(f"{workdir}/parts/part-{part}.csv", rows.to_csv(index=False).encode())
    frame = dd.read_csv(f"{url}/parts/part-*.csv")
    assert frame.npartitions == 3
    with dask.config.set(scheduler="synchronous"):
        totals = frame.groupby("part")["value"].sum().compute()
    assert totals.to_dict() == {0: 10, 1: 35, 2: 60}


def test_zarr_array_on_the_mapper(fs: SectorFileSystem, workdir: str) -> None:
    zarr = pytest.importorskip("zarr")
    np = pytest.importorskip("numpy")

    store = fs.get_mapper(f"{workdir}/array.zarr")
    array = zarr.open_array(store, mode="w", shape=(100, 100), chunks=(25, 25), dtype="i4")
    array[:] = np.arange(10_000, dtype="i4").reshape(100, 100)
    assert len(fs.ls(f"{workdir}/array.zarr")) > 1  # the chunks are files in Sector
    again = zarr.open_array(fs.get_mapper(f"{workdir}/array.zarr"), mode="r")
    assert again[40:42, 10].tolist() == [4010, 4110]
    assert int(again[:].sum()) == sum(range(10_000))


def test_upath_reads_and_writes(url: str) -> None:
    upath = pytest.importorskip("upath")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # universal-pathlib warns about protocols it lacks
        folder = upath.UPath(f"{url}/notes")
    assert type(folder).__name__ == "SectorPath"
    note = folder / "hello.txt"
    note.write_text("hello from UPath\n")
    assert note.read_text() == "hello from UPath\n"
    assert [p.name for p in folder.iterdir()] == ["hello.txt"]
    assert note.stat().st_size == len("hello from UPath\n")
    assert note.exists() and not (folder / "missing").exists()
