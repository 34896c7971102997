"""``pivf data import``: recordings made by the real codec become a dataset that loads, with frames
where the scene put them, the frame interval of the stream, splits that share no frame, and the
sidecar's record of the recording; every bad input is one line, exit 2, and no dataset."""
from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pivf.cli.main import app
from pivf.core.data.codec import encode_video
from pivf.core.data.dataset import load_dataset, read_sidecar
from pivf.core.data.importer import TEST_FILE, TRAIN_FILE
from pivf.core.data.limits import MAX_BYTES_ENV

FPS, N_FRAMES, SIDE, RADIUS = 30, 120, 256, 18
GREY, DISC = 110, (240, 60, 30)
CROP = (40, 24, 192, 192)  # x, y, w, h in source pixels; 6 source pixels per output pixel at --size 32
#: short sequences and large validation and test parts, so a 4-second recording fills every split
CUTTING = ["--size", "32", "--stride", "2", "--clip-length", "6", "--overlap", "2", "--test-length", "10",
           "--valid-fraction", "0.2", "--test-fraction", "0.2"]
runner = CliRunner()


def disc_centre(frame: int) -> tuple[float, float]:
    """The disc's centre (x = column, y = row, pixel i covering [i, i + 1)) in source pixels."""
    angle = 2 * math.pi * frame / 90
    return 136 + 60 * math.cos(angle), 120 + 50 * math.sin(angle)


def scene(frame: int) -> np.ndarray:
    """A coloured disc on grey at the frame's position, 4×4 supersampled at its edge."""
    cx, cy = disc_centre(frame)
    sub = (np.arange(SIDE * 4) + 0.5) / 4
    inside = ((sub[None, :] - cx) ** 2 + (sub[:, None] - cy) ** 2 <= RADIUS ** 2)
    cover = inside.reshape(SIDE, 4, SIDE, 4).mean(axis=(1, 3))[..., None]
    return np.round(GREY * (1 - cover) + np.array(DISC) * cover).astype(np.uint8)


def centroid(frame: np.ndarray) -> tuple[float, float]:
    """The intensity centroid of what departs from the grey background (codec noise ignored)."""
    weight = np.abs(frame.astype(float) - GREY).sum(axis=-1)
    weight[weight < 40] = 0
    rows, cols = np.indices(weight.shape)
    return float((weight * (cols + 0.5)).sum() / weight.sum()), float((weight * (rows + 0.5)).sum() / weight.sum())


def imported(out: Path, *args: str):
    return runner.invoke(app, ["data", "import", *args, "--out", str(out)])


def one_line_error(result, names: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def origins(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files if key.endswith("_origin")}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """The scene as H.264 in mp4, as numbered PNGs, and as a variable-rate Matroska file."""
    folder = tmp_path_factory.mktemp("recordings")
    frames = [scene(i) for i in range(N_FRAMES)]
    encode_video(folder / "disc.mp4", frames, FPS)
    pngs = folder / "pngs"
    pngs.mkdir()
    for index, frame in enumerate(frames, start=1):  # 1.png ... 120.png: 10.png sorts before 2.png as text
        Image.fromarray(frame).save(pngs / f"{index}.png", compress_level=1)
    with av.open(str(folder / "vfr.mkv"), "w") as container:
        stream = container.add_stream("libx264")
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        pts = 0
        for index in range(N_FRAMES):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 2 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += 20 if index % 2 else 50  # 20 ms, 50 ms, 20 ms, ...
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return {"video": folder / "disc.mp4", "pngs": pngs, "vfr": folder / "vfr.mkv"}


@pytest.fixture(scope="module")
def video_dataset(recordings, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "ds"
    result = imported(out, str(recordings["video"]), "--crop", ",".join(map(str, CROP)), *CUTTING)
    assert result.exit_code == 0, result.output
    return out


def test_round_trip_puts_the_disc_where_the_scene_did(video_dataset):
    dataset = load_dataset(video_dataset)
    info = dataset.info
    assert (info.task, info.image_size, info.channels, info.dt) == ("imported", 32, 3, 2 / FPS)
    assert info.recording is not None and info.recording.crop == CROP and info.recording.fps_from == "container"
    found = origins(video_dataset / TRAIN_FILE) | {"long_origin": origins(video_dataset / TEST_FILE)["test_origin"]}
    splits = {"train_origin": dataset.train, "valid_origin": dataset.valid, "test_origin": None,
              "long_origin": dataset.test}
    with np.load(video_dataset / TRAIN_FILE) as archive:
        splits["test_origin"] = archive["test_x"]
    worst = 0.0
    for key, frames in splits.items():
        assert len(frames) == len(found[key]) > 0
        for sequence, (source, first) in zip(np.asarray(frames), found[key], strict=True):
            assert source == 0
            for j, frame in enumerate(sequence):
                cx, cy = disc_centre(first + 2 * j)
                truth = ((cx - CROP[0]) * 32 / CROP[2], (cy - CROP[1]) * 32 / CROP[3])
                worst = max(worst, *(abs(a - b) for a, b in zip(centroid(frame), truth, strict=True)))
    assert worst < 0.25, f"the disc is {worst:.2f} output pixels from where the scene put it"


def test_the_preview_shows_the_crop_on_the_source_and_the_imported_frames(video_dataset):
    """The yellow crop box lies where --crop put it, scaled to the preview's height."""
    picture = np.asarray(Image.open(video_dataset / "import_preview.png").convert("RGB")).astype(int)
    scale = 360 / SIDE
    x, y = round(CROP[0] * scale), round(CROP[1] * scale) + round(CROP[3] * scale) // 2
    assert picture.shape[0] == 364 and list(picture[y, x]) == [255, 220, 0]
    assert list(picture[y, x - 3]) != [255, 220, 0]  # the box, not a yellow frame


def test_splits_follow_time_and_share_no_frame(video_dataset):
    found = origins(video_dataset / TRAIN_FILE)
    long_test = origins(video_dataset / TEST_FILE)["test_origin"]
    used = {key: {int(first) + 2 * j for first in found[key][:, 1] for j in range(6)} for key in found}
    used["test_origin"] |= {int(first) + 2 * j for first in long_test[:, 1] for j in range(10)}
    train, valid, test = used["train_origin"], used["valid_origin"], used["test_origin"]
    assert max(train) < min(valid) and max(valid) < min(test) and max(test) < N_FRAMES
    # 60 kept frames: train 36, valid 12, test 12; sequences of 6 every 4 frames, long ones of 10 every 8
    assert [len(found[key]) for key in ("train_origin", "valid_origin", "test_origin")] == [8, 2, 2]
    assert len(long_test) == 1 and min(test) == 96


def test_whole_recordings_are_dealt_to_the_splits_in_the_order_given(recordings, tmp_path):
    """Ten short clips: the first eight train, the ninth validates, the tenth tests; every sequence
    of a split comes from its own recordings only."""
    clips = []
    for index in range(10):
        clip = tmp_path / f"clip{index}.mp4"
        encode_video(clip, [scene(frame) for frame in range(12 * index, 12 * index + 12)], FPS)
        clips.append(str(clip))
    out = tmp_path / "ds"
    result = imported(out, *clips, "--split-by", "recording", "--clip-length", "6", "--test-length", "12")
    assert result.exit_code == 0, result.output
    found = origins(out / TRAIN_FILE)
    sources = {key: set(found[key][:, 0].tolist()) for key in found}
    assert sources == {"train_origin": set(range(8)), "valid_origin": {8}, "test_origin": {9}}
    assert set(origins(out / TEST_FILE)["test_origin"][:, 0].tolist()) == {9}
    assert load_dataset(out).info.recording.split_by == "recording"
    few = imported(tmp_path / "few", *clips[:3], "--split-by", "recording", "--clip-length", "6",
                   "--test-length", "12")
    assert "leaves the test split without a recording" in one_line_error(few, "split")
    assert not (tmp_path / "few").exists()


def test_numbered_images_give_the_same_frames_in_natural_order(recordings, video_dataset, tmp_path):
    result = imported(tmp_path / "ds", str(recordings["pngs"]), "--fps", str(FPS), "--crop",
                      ",".join(map(str, CROP)), *CUTTING)
    assert result.exit_code == 0, result.output
    from_images, from_video = load_dataset(tmp_path / "ds"), load_dataset(video_dataset)
    x, y, w, h = CROP
    expected = [np.asarray(Image.fromarray(scene(int(first) + 2 * j)).resize((32, 32), Image.Resampling.BOX,
                                                                            box=(x, y, x + w, y + h)))
                for first in origins(tmp_path / "ds" / TRAIN_FILE)["train_origin"][:, 1] for j in range(6)]
    assert np.array_equal(from_images.train.numpy().reshape(-1, 32, 32, 3), np.stack(expected))
    difference = np.abs(from_images.train.numpy().astype(int) - from_video.train.numpy()).mean()
    assert difference < 2, f"the video's frames depart from the images' by {difference:.2f} levels on average"
    assert from_images.info.dt == 2 / FPS and from_images.info.recording.fps_from == "--fps"


def test_variable_frame_rate_is_refused_without_fps(recordings, tmp_path):
    line = one_line_error(imported(tmp_path / "ds", str(recordings["vfr"]), *CUTTING), str(recordings["vfr"]))
    assert "variable frame rate" in line and "--fps" in line
    assert not (tmp_path / "ds").exists()
    accepted = imported(tmp_path / "ds", str(recordings["vfr"]), "--fps", "25", *CUTTING)
    assert accepted.exit_code == 0, accepted.output
    assert load_dataset(tmp_path / "ds").info.dt == 2 / 25


def test_known_quantities_and_scale_land_in_the_sidecar(recordings, tmp_path):
    known = tmp_path / "known.json"
    known.write_text(json.dumps({"length": 0.9, "gravity": 9.81, "metres_per_pixel": 0.002}))
    crop = ["--crop", ",".join(map(str, CROP))]
    result = imported(tmp_path / "a", str(recordings["video"]), *crop, *CUTTING, "--known", str(known),
                      "--physics", "pendulum", "--objects", "1")
    assert result.exit_code == 0, result.output
    meta = read_sidecar(tmp_path / "a" / TRAIN_FILE)
    assert meta.known == {"length": 0.9, "gravity": 9.81} and meta.ground_truth == {}
    assert meta.scale_m_per_px == pytest.approx(0.002 * 192 / 32) and meta.physics == "pendulum"
    flag = imported(tmp_path / "b", str(recordings["video"]), *crop, *CUTTING, "--metres-per-pixel", "0.004")
    assert flag.exit_code == 0, flag.output
    assert load_dataset(tmp_path / "b").info.scale_m_per_px == pytest.approx(0.004 * 6)
    info = runner.invoke(app, ["data", "info", str(tmp_path / "a"), "--preview", str(tmp_path / "p.png")])
    assert "known length=0.9, gravity=9.81" in info.stdout and "0.012 m per dataset pixel" in info.stdout
    assert "disc.mp4 (120 frames, 256×256" in info.stdout and "dt 0.0666667 s" in info.stdout
    for text, why in (('{"g": 9.81', "not valid JSON"), ('[1, 2]', "expected a JSON object of numbers"),
                      ('{"g": "fast"}', "'g' is \"fast\", expected a finite number")):
        known.write_text(text)
        assert why in one_line_error(imported(tmp_path / "c", str(recordings["video"]), "--known", str(known)),
                                     str(known))
    known.write_text('{"metres_per_pixel": 0.002}')
    one_line_error(imported(tmp_path / "c", str(recordings["video"]), "--known", str(known), "--metres-per-pixel",
                            "0.003"), str(known))
    assert not (tmp_path / "c").exists()


def _corrupt(folder: Path, recordings: dict[str, Path]) -> Path:
    path = folder / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return path


def _empty(folder: Path, recordings: dict[str, Path]) -> Path:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def _no_frames(folder: Path, recordings: dict[str, Path]) -> Path:
    path = folder / "started.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return path


def _truncated(folder: Path, recordings: dict[str, Path]) -> Path:
    path = folder / "cut.mp4"
    path.write_bytes(recordings["video"].read_bytes()[:20000])  # mp4 keeps its index at the end
    return path


def _missing(folder: Path, recordings: dict[str, Path]) -> Path:
    return folder / "nowhere.mp4"


def _not_video(folder: Path, recordings: dict[str, Path]) -> Path:
    path = folder / "notes.txt"
    path.write_text("frames\n")
    return path


def _pngs(folder: Path, sides: tuple[int, ...]) -> Path:
    for index, side in enumerate(sides, start=1):
        Image.fromarray(np.full((side, side, 3), 200, np.uint8)).save(folder / f"{index}.png")
    return folder


def _mixed_sizes(folder: Path, recordings: dict[str, Path]) -> Path:
    return _pngs(folder, (32, 32, 40))


def _no_images(folder: Path, recordings: dict[str, Path]) -> Path:
    (folder / "readme.txt").write_text("no frames here")
    return folder


def _broken_image(folder: Path, recordings: dict[str, Path]) -> Path:
    _pngs(folder, (32, 32, 32))
    (folder / "2.png").write_bytes((folder / "2.png").read_bytes()[:60])
    return folder


def _short(folder: Path, recordings: dict[str, Path]) -> Path:
    return encode_video(folder / "short.mp4", [scene(i) for i in range(20)], FPS)


BAD = {  # case → (make the source in a folder, extra options, what the line says beside the source's path)
    "corrupt": (_corrupt, [], "not a readable video"),
    "empty file": (_empty, [], "not a readable video"),
    "no frames": (_no_frames, [], "holds no video stream"),
    "truncated": (_truncated, [], "not a readable video"),
    "missing": (_missing, [], "no such video file or folder"),
    "not a video": (_not_video, [], "not a video"),
    "mixed sizes": (_mixed_sizes, ["--fps", "30"], "3.png: 40×40, but 1.png is 32×32"),
    "no images": (_no_images, ["--fps", "30"], "must hold numbered images"),
    "broken image": (_broken_image, ["--fps", "30"], "2.png: not a readable image"),
    "no rate": (lambda folder, _: _pngs(folder, (32, 32)), [], "a folder of images has no frame rate; pass --fps"),
    "too short": (_short, CUTTING, "too short: of its 10 frames kept (--stride 2) the valid split gets 2, fewer "
                                   "than --clip-length 6"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_naming_the_file(case, recordings, tmp_path):
    make, extra, says = BAD[case]
    folder = tmp_path / "in"
    folder.mkdir()
    source = make(folder, recordings)
    line = one_line_error(imported(tmp_path / "out", str(source), *extra), str(source))
    assert says in line
    assert not (tmp_path / "out").exists()


def test_crop_outside_and_options_are_refused(recordings, tmp_path):
    video = str(recordings["video"])
    line = one_line_error(imported(tmp_path / "out", video, "--crop", "100,100,200,200"), video)
    assert "reaches past its 256×256 frames" in line
    for args, says in ((["--crop", "0,0,100,80"], "--crop: 0,0,100,80 must be a square"),
                       (["--crop", "a,b"], "--crop: expected X,Y,W,H"),
                       (["--overlap", "12"], "--overlap: must be at least 0 and below --clip-length 12"),
                       (["--valid-fraction", "0.5", "--test-fraction", "0.5"], "leave no frames for training"),
                       (["--physics", "pendulm"], "unknown physics 'pendulm'")):
        assert says in one_line_error(imported(tmp_path / "out", video, *args), "error: ")
    assert not (tmp_path / "out").exists()


def test_too_large_is_refused_before_it_is_held(recordings, tmp_path):
    result = runner.invoke(app, ["data", "import", str(recordings["video"]), "--out", str(tmp_path / "out"), *CUTTING],
                           env={MAX_BYTES_ENV: "20000"})
    line = one_line_error(result, str(recordings["video"]))
    assert "over the limit of 19.5 KiB" in line and MAX_BYTES_ENV in line
    assert not (tmp_path / "out").exists()


def test_an_existing_dataset_is_replaced_only_with_overwrite(recordings, tmp_path):
    args = [str(recordings["video"]), *CUTTING]
    assert imported(tmp_path / "ds", *args).exit_code == 0
    before = (tmp_path / "ds" / TRAIN_FILE).read_bytes()
    refused = imported(tmp_path / "ds", *args, "--overlap", "1")
    assert "pass --overwrite" in one_line_error(refused, str(tmp_path / "ds"))
    assert (tmp_path / "ds" / TRAIN_FILE).read_bytes() == before
    assert imported(tmp_path / "ds", *args, "--overlap", "1", "--overwrite").exit_code == 0
    assert load_dataset(tmp_path / "ds").info.recording.overlap == 1
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == sorted(
        [TRAIN_FILE, TEST_FILE, TRAIN_FILE.replace(".npz", ".json"), TEST_FILE.replace(".npz", ".json"),
         "import_preview.png"])

