"""What a run trained on: its dataset's files and their sha256, recorded in ``dataset.json`` in the
run directory when the run starts. Evaluating or rendering the run later checks the dataset against
it, so a dataset regenerated in the same place (another seed, other sizes) is refused rather than
reported on as if the run had seen it. Runs older than the record are not checked."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from pivf.core.data.dataset import Dataset
from pivf.core.kernel.atomic import atomic_write_text
from pivf.core.kernel.errors import DataError
from pivf.core.kernel.plugin import format_validation_error

__all__ = ["RECORD", "check_dataset", "record_dataset"]

RECORD = "dataset.json"
#: the option that uses a run's dataset although it changed since the run trained
ACCEPT_OPTION = "--accept-changed-data"


class DatasetRecord(BaseModel):
    files: list[tuple[str, str]]  # (name, sha256), the train file first
    sequences: tuple[int, int, int]  # train, valid, test

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetRecord:
        return cls(files=[(path.name, digest)
                          for path, digest in zip(dataset.info.files, dataset.info.sha256, strict=True)],
                   sequences=(len(dataset.train), len(dataset.valid), len(dataset.test)))


def record_dataset(run_dir: Path, dataset: Dataset) -> None:
    atomic_write_text(Path(run_dir) / RECORD, DatasetRecord.of(dataset).model_dump_json(indent=2) + "\n")


def _read_record(path: Path) -> DatasetRecord:
    try:
        return DatasetRecord.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    except ValidationError as exc:
        raise DataError(format_validation_error(exc, str(path))) from None


def _change(run_dir: Path, then: DatasetRecord, now: DatasetRecord, files: tuple[Path, ...]) -> str:
    """One phrase: which file differs from what the run trained on, and how."""
    sizes = "/".join(map(str, then.sequences)), "/".join(map(str, now.sequences))
    counts = f"; train/valid/test sequences {sizes[0]} then, {sizes[1]} now" if sizes[0] != sizes[1] else ""
    if [name for name, _ in then.files] != [name for name, _ in now.files]:
        return (f"{files[0]}: the dataset is not the one run {run_dir} trained on (files "
                f"{', '.join(name for name, _ in then.files)} then, {', '.join(name for name, _ in now.files)} "
                f"now{counts})")
    path, old, new = next((path, old, new)
                          for path, (_, old), (_, new) in zip(files, then.files, now.files, strict=True) if old != new)
    return f"{path}: changed since run {run_dir} trained on it (sha256 {old[:12]} then, {new[:12]} now{counts})"


def check_dataset(run_dir: Path, dataset: Dataset, accept_changed: bool = False,
                  log: Callable[[str], None] = print) -> None:
    """Refuse a dataset other than the one the run recorded at its start, unless ``accept_changed``,
    which then says so in ``log``. A run without a record passes."""
    path = Path(run_dir) / RECORD
    if not path.is_file():
        return
    then, now = _read_record(path), DatasetRecord.of(dataset)
    if then == now:
        return
    change = _change(Path(run_dir), then, now, dataset.info.files)
    if not accept_changed:
        raise DataError(f"{change}; pass {ACCEPT_OPTION} to use it anyway")
    log(f"note: {change}; used anyway ({ACCEPT_OPTION})")
