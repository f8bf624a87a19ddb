"""gradcam.models.face_detector and joblib_weights: MTCNN's P-Net from the mtcnn wheel's weights."""

import pickle

import keras
import numpy as np
import pytest
from PIL import Image

import gradcam
from gradcam.models import face_detector
from gradcam.models.joblib_weights import read_joblib_arrays
from gradcam.targets import Box

lz4_frame = pytest.importorskip("lz4.frame")

# The face in samples/astronaut.jpg as mtcnn 1.0's full three-stage detector finds it
# (MTCNN().detect_faces: box [180, 65, 84, 107], confidence 0.9994), as x1, y1, x2, y2.
ASTRONAUT_FACE = (180, 65, 264, 172)


def iou(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def arrays():
    return read_joblib_arrays(face_detector._weights_path())


# --- the weight reader -------------------------------------------------------------------

def test_reader_gives_what_joblib_gives(arrays):
    joblib = pytest.importorskip("joblib")
    expected = joblib.load(face_detector._weights_path())
    assert [a.shape for a in arrays] == [a.shape for a in expected]
    for ours, theirs in zip(arrays, expected, strict=True):
        assert ours.dtype == theirs.dtype == np.float32
        np.testing.assert_array_equal(ours, theirs)


def test_reader_reads_joblib_files_of_other_types_and_orders(tmp_path):
    joblib = pytest.importorskip("joblib")
    saved = [np.arange(6, dtype=np.float64).reshape(2, 3), np.asfortranarray(
        np.arange(12, dtype=np.int32).reshape(3, 4)), np.array([1, 2], dtype=">i2"),
        np.zeros((0, 5), np.uint8), np.array(7.5, np.float32)]
    path = tmp_path / "arrays.lz4"
    joblib.dump(saved, path, compress=("lz4", 3))
    loaded = read_joblib_arrays(path, expected_sha256=None)
    for ours, theirs in zip(loaded, saved, strict=True):
        assert ours.shape == theirs.shape and ours.flags.c_contiguous
        np.testing.assert_array_equal(ours, theirs)
    assert loaded[2].dtype == np.dtype("=i2")


def _lz4(tmp_path, payload: bytes):
    path = tmp_path / "weights.lz4"
    path.write_bytes(lz4_frame.compress(payload))
    return path


def test_reader_refuses_any_other_global_without_calling_it(tmp_path):
    path = _lz4(tmp_path, pickle.dumps([print], protocol=4))
    with pytest.raises(ValueError, match=r"weights.lz4: refusing global 'builtins'.'print'"):
        read_joblib_arrays(path)
    path = _lz4(tmp_path, pickle.dumps([1, 2], protocol=4))
    with pytest.raises(ValueError, match="does not hold a list of arrays"):
        read_joblib_arrays(path)


def test_reader_refuses_bad_files(tmp_path):
    path = tmp_path / "plain.lz4"
    path.write_bytes(b"not lz4 at all")
    with pytest.raises(ValueError, match="plain.lz4: not an LZ4 frame"):
        read_joblib_arrays(path)
    with pytest.raises(ValueError, match=r"plain.lz4 has sha256 [0-9a-f]{64}; expected 00"):
        read_joblib_arrays(path, expected_sha256="00")
    with pytest.raises(ValueError, match="not a regular file"):
        read_joblib_arrays(tmp_path)


def test_reader_refuses_an_array_cut_short(tmp_path):
    data = lz4_frame.decompress(open(face_detector._weights_path(), "rb").read())
    path = _lz4(tmp_path, data[:300])  # the first array's header, and part of its bytes
    with pytest.raises(ValueError, match=r"shape \(3, 3, 3, 10\) and type float32 needs 1080 "
                                         "bytes; the file holds"):
        read_joblib_arrays(path)


# --- the network ---------------------------------------------------------------------------

def numpy_pnet(x, arrays):
    """P-Net by hand in numpy: valid convolutions, PReLU, 2x2 max pooling, softmax."""

    def conv(x, kernel, bias):
        kh, kw = kernel.shape[:2]
        h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
        patches = np.stack([x[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)], 3)
        return np.einsum("nhwpc,pco->nhwo", patches, kernel.reshape(kh * kw, *kernel.shape[2:])) + bias

    def prelu(x, alpha):
        return np.where(x > 0, x, alpha.reshape(-1) * x)

    (k1, b1, a1, k2, b2, a2, k3, b3, a3, k4, b4, k5, b5) = arrays
    x = prelu(conv(x, k1, b1), a1)
    h, w = -(-x.shape[1] // 2) * 2, -(-x.shape[2] // 2) * 2  # "same" pooling pads bottom-right
    padded = np.full((x.shape[0], h, w, x.shape[3]), -np.inf, np.float32)
    padded[:, :x.shape[1], :x.shape[2]] = x
    x = padded.reshape(x.shape[0], h // 2, 2, w // 2, 2, -1).max(axis=(2, 4))
    x = prelu(conv(x, k2, b2), a2)
    x = prelu(conv(x, k3, b3), a3)
    logits = conv(x, k5, b5)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    return conv(x, k4, b4), probabilities / probabilities.sum(-1, keepdims=True)


def test_pnet_computes_what_its_weights_say(arrays):
    pnet = face_detector.PNet()
    assert [layer.name for layer in pnet.layers if layer.weights] == [
        "conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4_1", "conv4_2"]
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 17, 23, 3)).astype(np.float32)
    offsets, probabilities = (keras.ops.convert_to_numpy(t) for t in pnet(x))
    expected_offsets, expected_probabilities = numpy_pnet(x, arrays)
    assert offsets.shape == (2, 4, 7, 4) and probabilities.shape == (2, 4, 7, 2)
    np.testing.assert_allclose(offsets, expected_offsets, atol=1e-4)
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-5)


def test_pnet_finds_the_astronauts_face():
    image = gradcam.image_from_path(gradcam.samples.path("astronaut"), image_shape=(512, 512))
    pnet = face_detector.PNet(input_shape=(512, 512, 3), scale=0.12)
    assert pnet.pnet_scale == (61 / 512, 61 / 512)
    boxes, scores = face_detector.box_decoder(pnet)(pnet(face_detector.preprocess_input(image)))
    boxes, scores = keras.ops.convert_to_numpy(boxes), keras.ops.convert_to_numpy(scores)
    assert boxes.shape == (1, 26 * 26, 4) and scores.shape == (1, 26 * 26, 2)
    best = scores[0, :, 1].argmax()
    # The most confident window: (174.8, 62.5, 261.9, 173.7), face probability 0.9994.
    assert scores[0, best, 1] > 0.999
    assert iou(boxes[0, best], ASTRONAUT_FACE) > 0.85
    np.testing.assert_allclose(boxes[0, best], [174.8, 62.5, 261.9, 173.7], atol=0.5)


def test_decode_pnet_by_hand():
    offsets = np.zeros((1, 2, 3, 4), np.float32)
    offsets[0, 1, 2] = [0.5, -0.25, 0.0, 1.0]
    probabilities = np.stack([np.full((1, 2, 3), 0.75), np.full((1, 2, 3), 0.25)], -1)
    boxes, scores = face_detector.decode_pnet([offsets, probabilities.astype(np.float32)],
                                              scale=(0.5, 0.25))
    boxes = keras.ops.convert_to_numpy(boxes)
    assert boxes.shape == (1, 6, 4) and tuple(scores.shape) == (1, 6, 2)
    # Window (0, 0): x 0..12, y 0..12 in P-Net's pixels; x / 0.25, y / 0.5 in the input's.
    np.testing.assert_allclose(boxes[0, 0], [0, 0, 48, 24])
    # Window (1, 2): x from 4 + 6 to 16, y from 2 - 3 to 14 + 12.
    np.testing.assert_allclose(boxes[0, 5], [40, -2, 64, 52])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores)[0, :, 1], 0.25)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="weights=.imagenet."):
        face_detector.PNet(weights="imagenet")
    with pytest.raises(ValueError, match=r"scale=2"):
        face_detector.PNet(input_shape=(64, 64, 3), scale=2)
    with pytest.raises(ValueError, match=r"fixed input size.*input_shape=None"):
        face_detector.PNet(scale=0.5)
    with pytest.raises(ValueError, match=r"smaller than P-Net's 12x12 window"):
        face_detector.PNet(weights=None, input_shape=(40, 40, 3), scale=0.2)
    with pytest.raises(ValueError, match=r"input_shape=\(64, 64, 1\)"):
        face_detector.PNet(weights=None, input_shape=(64, 64, 1))
    with pytest.raises(ValueError, match="built by face_detector.PNet"):
        face_detector.box_decoder(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]))
    with pytest.raises(ValueError, match=r"received shapes \(1, 2, 2, 4\) and \(1, 2, 2, 3\)"):
        face_detector.decode_pnet([np.zeros((1, 2, 2, 4)), np.zeros((1, 2, 2, 3))])
    with pytest.raises(ValueError, match="received ndarray"):
        face_detector.decode_pnet(np.zeros((1, 2, 2, 4)))


def test_preprocess_input_leaves_its_input_alone():
    x = np.array([[0.0, 127.5, 255.0]])
    np.testing.assert_allclose(face_detector.preprocess_input(x), [[-127.5 / 128, 0, 127.5 / 128]])
    assert x.tolist() == [[0.0, 127.5, 255.0]]


def test_pnet_checks_the_weights_hash(monkeypatch):
    monkeypatch.setattr(face_detector, "_SHA256", "0" * 64)
    with pytest.raises(ValueError, match=r"pnet.lz4 has sha256 ea6b0c3e.*; expected 0{64}"):
        face_detector.PNet()


def test_missing_wheel_names_the_pip_command(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "mtcnn" else find_spec(name, *args))
    with pytest.raises(ImportError, match="(?s)P-Net come from the package 'mtcnn'.*pip install mtcnn"):
        face_detector.PNet()


def test_box_decoder_reads_a_saved_pnets_scale(tmp_path):
    pnet = face_detector.PNet(input_shape=(64, 48, 3), scale=0.4)
    path = str(tmp_path / "pnet.keras")
    pnet.save(path)
    loaded = keras.models.load_model(path)
    assert not hasattr(loaded, "pnet_scale")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 48, 3)).astype(np.float32)
    expected = face_detector.box_decoder(pnet)(pnet(x))
    got = face_detector.box_decoder(loaded)(loaded(x))
    for a, b in zip(expected, got):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(b), keras.ops.convert_to_numpy(a), atol=1e-5)


def test_the_command_line_explains_the_astronauts_face_box(tmp_path, capsys):
    from helpers.cli import run, summary

    path = str(tmp_path / "pnet.keras")
    face_detector.PNet(input_shape=(512, 512, 3), scale=0.12).save(path)
    names = tmp_path / "names.txt"
    names.write_text("no face\nface\n")
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "explain", gradcam.samples.path("astronaut"), "--model", path, "--out", out,
                            "--preprocess", "lite", "--layer", "prelu3", "--class-names", names,
                            "--target", "box:174.8,62.5,261.9,173.7:face",
                            "--decode", "gradcam.models.face_detector:box_decoder")
    assert status == 0, stderr
    ((target,),) = [item["targets"] for item in summary(out)["images"]]
    assert target["name"] == "box (174.8, 62.5, 261.9, 173.7): 1 (face)"
    assert target["score"] > 0.999 and not target["empty"]  # the window found above, (x - 127) / 128 not 127.5
    assert (out / target["overlay"]).is_file()


# --- R-Net and O-Net ---------------------------------------------------------------------
def _astronaut_crops(size):
    """Crops of the astronaut photo as MTCNN's later stages see them, resized to ``size``
    and scaled by preprocess_input: the face, a window shifted off it, and the sky."""
    photo = Image.open(gradcam.samples.path("astronaut")).convert("RGB").resize((512, 512))
    windows = [ASTRONAUT_FACE, (150, 40, 240, 130), (10, 300, 90, 380)]
    crops = [np.asarray(photo.crop(window).resize((size, size), Image.BILINEAR), np.float32) for window in windows]
    return face_detector.preprocess_input(np.stack(crops))


@pytest.mark.parametrize("kind, size", [("RNet", 24), ("ONet", 48)])
def test_refiners_compute_what_mtcnns_own_networks_compute(kind, size):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("mtcnn's networks are tf.keras models")
    network = pytest.importorskip(f"mtcnn.network.{kind.lower()}")
    from mtcnn.utils.tensorflow import load_weights

    theirs = getattr(network, kind)()
    theirs.build()
    theirs.set_weights(load_weights(f"{kind.lower()}.lz4"))
    ours = getattr(face_detector, kind)()
    rng = np.random.default_rng(0)
    crops = np.concatenate([_astronaut_crops(size), rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)])
    expected = [np.asarray(t) for t in theirs(crops)]
    got = [keras.ops.convert_to_numpy(t) for t in ours(crops)]
    assert [t.shape for t in got] == [t.shape for t in expected]
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert got[-1][0, 1] > 0.99 and got[-1][2, 1] < 0.5  # the face is a face, the sky is not


def test_decode_refined_and_landmarks_by_hand():
    offsets = np.array([[0.1, -0.05, 0.0, 0.25]], np.float32)
    landmarks = np.array([[0.3, 0.7, 0.5, 0.35, 0.65, 0.4, 0.4, 0.6, 0.8, 0.8]], np.float32)
    probabilities = np.array([[0.25, 0.75]], np.float32)
    boxes, scores = face_detector.decode_refined([offsets, landmarks, probabilities], 48)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(boxes), [[[4.8, -2.4, 48, 60]]], atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores), [[[0.25, 0.75]]])
    boxes, _ = face_detector.decode_refined([offsets, probabilities], 24)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(boxes), [[[2.4, -1.2, 24, 30]]], atol=1e-5)
    points = keras.ops.convert_to_numpy(face_detector.decode_landmarks([offsets, landmarks, probabilities]))
    np.testing.assert_allclose(points, [[[14.4, 19.2], [33.6, 19.2], [24, 28.8], [16.8, 38.4], [31.2, 38.4]]],
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"received shapes \(1, 4\) and \(1, 3\)"):
        face_detector.decode_refined([offsets, np.zeros((1, 3), np.float32)], 24)
    with pytest.raises(ValueError, match="Expected O-Net's"):
        face_detector.decode_landmarks([offsets, probabilities])


def test_a_box_target_explains_onets_refined_detection():
    onet = face_detector.ONet()
    crop = _astronaut_crops(48)[:1]
    decode = face_detector.box_decoder(onet)
    boxes, scores = (keras.ops.convert_to_numpy(t) for t in decode(onet(crop)))
    assert boxes.shape == (1, 1, 4) and scores[0, 0, 1] > 0.99
    # the refined box, back in the photo's pixels: still the face mtcnn finds
    x1, y1, x2, y2 = ASTRONAUT_FACE
    refined = boxes[0, 0] * np.array([x2 - x1, y2 - y1] * 2) / 48 + np.array([x1, y1] * 2)
    assert iou(refined, ASTRONAUT_FACE) > 0.8
    (expl,) = gradcam.GradCAM(onet, layer="prelu4").explain(crop, targets=Box(boxes[0, 0], 1, decode=decode))
    (target,) = expl.targets
    assert target.score == pytest.approx(float(scores[0, 0, 1]), abs=1e-5)
    assert target.heatmap.shape == (3, 3) and not target.empty
