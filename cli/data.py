"""``pivf data``: generate a task's dataset, import recordings as one, list the tasks, inspect a dataset."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pivf.cli.options import name_values
from pivf.core.kernel.errors import PivfUserError

if TYPE_CHECKING:
    from pivf.core.data.dataset import DatasetInfo, Sidecar

data_app = typer.Typer(help="Generate, import, list and inspect datasets.", no_args_is_help=True)


@data_app.command("generate")
def generate_command(
    task: Annotated[str, typer.Argument(help="task name (see `pivf data tasks`)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write the train and test files into")],
    n_train: Annotated[int, typer.Option(min=0, help="training sequences")] = 5000,
    n_valid: Annotated[int, typer.Option(min=0, help="validation sequences")] = 500,
    n_test: Annotated[int, typer.Option(min=0, help="test sequences (short ones in the train file, long ones in the "
                                                    "test file)")] = 500,
    seed: Annotated[int, typer.Option(min=0, max=2**64 - 1, help="random seed; the same seed gives the same bytes on "
                                                                 "the same kind of device")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto")] = "cpu",
    params: Annotated[list[str] | None, typer.Option("--set", "-s", help="task param: field=value (repeatable), e.g. "
                                                                         "image_size=64")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace another dataset of the same file names in "
                                                                "--out")] = False,
) -> None:
    """Simulate and render a task's dataset: a train file (train/valid/short test) and a long test file.
    The same dataset in --out already is kept; another one (another seed, other sizes) only with --overwrite."""
    from pivf.core.data.generate import check_request, existing_dataset, file_counts, generate_dataset, make_task
    from pivf.core.kernel.paths import make_dir
    from pivf.core.training.devices import resolve_device

    instance = make_task(task, name_values(params))
    torch_device = str(resolve_device(device, option="--device"))
    counts = file_counts(n_train, n_valid, n_test)
    check_request(instance, counts)  # all before the progress bar starts drawing
    found = None if overwrite else existing_dataset(instance, out, counts, seed, torch_device)
    if found is not None:
        typer.echo(f"{found[0]} and {found[1].name} are there already, made by the same task, params, seed and "
                   "sizes; nothing written")
        return
    make_dir(out, "--out")
    total = n_train + n_valid + 2 * n_test
    start = time.perf_counter()
    with typer.progressbar(length=total, label=f"{instance.name}", file=None) as bar:
        paths = generate_dataset(instance, out, n_train, n_valid, n_test, seed, torch_device,
                                 progress=bar.update, overwrite=overwrite)
    elapsed = time.perf_counter() - start
    for path in paths:
        typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix('.json').name}")
    typer.echo(f"{total} sequences in {elapsed:.1f} s")


@data_app.command("import")
def import_command(
    sources: Annotated[list[Path], typer.Argument(help="video files (mp4, mov, avi, mkv, webm, gif, m4v) or folders "
                                                       "of numbered images, one rate and frame size for all")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write the train and test files into")],
    size: Annotated[int, typer.Option(min=1, help="the dataset's square frame side in pixels (area-averaged "
                                                  "down)")] = 32,
    crop: Annotated[str | None, typer.Option(help="X,Y,W,H: the square (W = H) of source pixels to keep "
                                                  "(default: the largest centred square)")] = None,
    stride: Annotated[int, typer.Option(min=1, help="keep every S-th frame; dt = stride / fps")] = 1,
    fps: Annotated[float | None, typer.Option(help="frames per second to assume, timestamps ignored (required "
                                                   "for image folders and variable-rate video)")] = None,
    clip_length: Annotated[int, typer.Option(min=1, help="frames per train, valid and short test "
                                                         "sequence")] = 12,
    overlap: Annotated[int | None, typer.Option(min=0, help="frames consecutive sequences of a split share "
                                                            "(default: half of --clip-length)")] = None,
    test_length: Annotated[int, typer.Option(min=1, help="frames per long test sequence (extrapolation)")] = 30,
    valid_fraction: Annotated[float, typer.Option(help="of each recording's frames, after the training part")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="of each recording's frames, its last ones")] = 0.1,
    split_by: Annotated[str, typer.Option(help="time: split each recording in time order; recording: deal whole "
                                               "recordings to train, valid and test in the order given (many "
                                               "short clips)")] = "time",
    objects: Annotated[int, typer.Option(min=1, help="objects in the scene")] = 1,
    physics: Annotated[str | None, typer.Option(help="the physics plugin the scene follows, recorded in the "
                                                     "sidecar")] = None,
    known: Annotated[Path | None, typer.Option(help='JSON of known quantities in physical units, named as '
                                                    'runs report them, e.g. {"length": 0.9, "gravity": 9.81, '
                                                    '"metres_per_pixel": 0.002}')] = None,
    metres_per_pixel: Annotated[float | None, typer.Option(help="scale of the SOURCE pixels; the sidecar records "
                                                                "it for the dataset's pixels")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an imported dataset in --out")] = False,
) -> None:
    """Turn recordings into a dataset: crop, average down, keep every S-th frame, split each recording by
    time (or deal whole recordings) into train, valid and test (no frame in two splits) and cut the
    parts into sequences."""
    from pivf.core.data.importer import ImportOptions, import_recordings, known_and_scale, parse_crop

    quantities, scale = known_and_scale(known, metres_per_pixel)
    options = ImportOptions(size=size, crop=parse_crop(crop) if crop is not None else None, stride=stride, fps=fps,
                            clip_length=clip_length, overlap=overlap, test_length=test_length,
                            valid_fraction=valid_fraction, test_fraction=test_fraction, n_objects=objects,
                            split_by=split_by, physics=physics, metres_per_pixel=scale,  # type: ignore[arg-type]
                            known=quantities)
    written = [_echo_written(path) for path in import_recordings(sources, out, options, overwrite=overwrite)]
    _echo_recording(written[0])
    typer.echo(f"preview       {_import_preview(sources[0], out, written[0])}")


def _import_preview(source: Path, out: Path, meta: Sidecar) -> Path:
    """``import_preview.png`` in ``out``: the first source's first frame with the crop, and the first
    training sequence as imported."""
    from pivf.core.data.dataset import load_dataset
    from pivf.core.data.preview import write_import_preview
    from pivf.core.data.recording import open_recording

    assert meta.recording is not None, "an import records its recordings"
    _, first = next(iter(open_recording(source).frames()))
    return write_import_preview(first, meta.recording.crop, load_dataset(out).train[0], out / "import_preview.png")


def _echo_written(path: Path) -> Sidecar:
    """One line on a file just written: its size and sequences; its sidecar."""
    from pivf.core.data.dataset import read_sidecar

    meta = read_sidecar(path)
    assert meta is not None, f"{path}: written without its sidecar"
    counts = ", ".join(f"{key.removesuffix('_x')} {n}" for key, n in meta.counts.items() if n)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix('.json').name}: "
               f"{counts} sequences of {meta.lengths['test_x']} frames")
    return meta


def _echo_recording(meta: Sidecar | DatasetInfo) -> None:
    """What ``import`` recorded of the recordings, the scale and the known quantities; nothing otherwise."""
    recording = meta.recording
    if recording is None:
        return
    x, y, width, height = recording.crop
    sources = ", ".join(f"{s.name} ({s.frames} frames, {s.width}×{s.height}, sha256 {s.sha256[:12]})"
                        for s in recording.sources)
    typer.echo(f"recorded      {sources}")
    typer.echo(f"frames        every {recording.stride} at {recording.fps:g} fps (from the {recording.fps_from}): dt "
               f"{meta.dt:g} s; crop {x},{y},{width},{height} averaged to {meta.image_size}×{meta.image_size}")
    scale = "unknown" if meta.scale_m_per_px is None else f"{meta.scale_m_per_px:g} m per dataset pixel"
    known = ", ".join(f"{key}={value:g}" for key, value in meta.known.items()) or "none"
    typer.echo(f"scale         {scale}; known {known}")


@data_app.command("tasks")
def tasks_command() -> None:
    """List the tasks, one line each: name, physics, frame size, sequence lengths, description."""
    from pivf.core.data.task import Task
    from pivf.core.kernel.registry import registry

    for row in registry().rows("task"):
        if row.cls is None or not issubclass(row.cls, Task):
            continue
        params = row.cls.validate_params()
        size = f"{params.image_size}px"
        lengths = f"{params.train_length}/{params.test_length} frames"
        detail = f"unavailable: {row.error}" if row.status == "unavailable" else row.description
        typer.echo(f"{row.name:<20} {row.cls.physics:<16} {size:<6} {lengths:<16} {detail}")


@data_app.command("info")
def info_command(
    path: Annotated[Path, typer.Argument(help="a dataset folder, train file or test file")],
    task: Annotated[str | None, typer.Option(help="task of files that have no sidecar and an unfamiliar name")] = None,
    preview: Annotated[Path | None, typer.Option(help="where to write the preview PNG (default: beside the "
                                                      "data)")] = None,
) -> None:
    """Shapes, parameters and provenance of a dataset, and a preview PNG of its test sequences."""
    from pivf.core.data.dataset import load_dataset
    from pivf.core.data.preview import write_preview

    dataset = load_dataset(path, task=task)
    info = dataset.info
    typer.echo(f"task          {info.task} (physics {info.physics}; metadata from {info.source})")
    typer.echo(f"files         {', '.join(str(f) for f in info.files)}")
    for split in ("train", "valid", "test"):
        frames = getattr(dataset, split)
        typer.echo(f"{split:<13} {tuple(frames.shape)} {str(frames.dtype).removeprefix('torch.')}")
    truth = ", ".join(f"{key}={value:g}" for key, value in info.ground_truth.items()) or "none"
    typer.echo(f"ground truth  {truth}")
    typer.echo(f"dt            {info.dt:g}; {info.image_size}px, {info.channels} channels, {info.n_objects} objects; "
               f"seed {info.seed if info.seed is not None else 'unknown'}")
    typer.echo(f"nuisance      {info.params.get('nuisance') or 'none'}")
    _echo_recording(info)
    frames = dataset.test if len(dataset.test) else dataset.train
    if not len(frames):
        raise PivfUserError(f"{path}: no sequences to preview")
    target = preview or info.files[0].with_name(f"{info.files[0].stem}_preview.png")
    typer.echo(f"preview       {write_preview(frames, target)}")
