"""Image properties on synthetic images with known answers: bars of known width and height, a
sheared bar of known slant, strokes of known thickness, a centroid where the ink is."""
import numpy as np
import pytest

from capsviz.analysis import image_properties as ip


def bar(*, top=4, bottom=24, left=12, right=15, size=28, shear=0.0, value=1.0) -> np.ndarray:
    """A filled rectangle (rows top..bottom-1, columns left..right-1), each row shifted right by
    shear x (height above the middle row): a stroke leaning right for shear > 0."""
    image = np.zeros((size, size), np.float32)
    middle = (top + bottom - 1) / 2
    for row in range(top, bottom):
        shift = int(round(shear * (middle - row)))
        image[row, left + shift:right + shift] = value
    return image


def test_bounding_box_width_and_height_at_the_stated_threshold():
    images = np.stack([bar(left=12, right=15), bar(left=6, right=22, top=10, bottom=14), np.zeros((28, 28))])
    assert ip.width(images).tolist() == [3, 16, 0]
    assert ip.height(images).tolist() == [20, 4, 0]
    faint = bar(left=2, right=26, value=0.3)  # below INK_THRESHOLD: not ink for the box
    faint[10:12, 13:15] = 0.9
    assert ip.width(faint[None]).tolist() == [2] and ip.height(faint[None]).tolist() == [2]
    assert ip.width(faint[None], threshold=0.2).tolist() == [24]


def test_ink_is_the_sum_of_intensities():
    assert ip.ink(np.stack([bar(left=12, right=15), bar(value=0.5)])).tolist() == pytest.approx([60.0, 30.0])


@pytest.mark.parametrize("stroke", [2, 3, 5])
def test_thickness_of_a_vertical_stroke_is_its_width(stroke):
    image = bar(top=4, bottom=24, left=12, right=12 + stroke)
    # ink = 20 x stroke; the skeleton of a 20-long bar is about 20 long (its ends shrink a little)
    assert ip.thickness(image[None])[0] == pytest.approx(stroke, rel=0.15)


def test_a_thicker_stroke_reads_thicker():
    widths = ip.thickness(np.stack([bar(left=13, right=13 + w) for w in (1, 2, 3, 4, 6)]))
    assert np.all(np.diff(widths) > 0), widths


@pytest.mark.parametrize("shear", [-0.5, -0.25, 0.0, 0.3, 0.6])
def test_slant_of_a_sheared_bar_is_its_shear(shear):
    image = bar(top=4, bottom=24, left=12, right=15, shear=shear)
    assert ip.slant(image[None])[0] == pytest.approx(shear, abs=0.05)


def test_centroid_is_where_the_ink_is():
    image = np.zeros((28, 28), np.float32)
    image[5:9, 20:24] = 1.0  # centre (21.5, 6.5)
    centre_x, centre_y = ip.centre(image[None])
    assert (centre_x[0], centre_y[0]) == pytest.approx((21.5, 6.5))
    blank_x, blank_y = ip.centre(np.zeros((1, 28, 28)))
    assert (blank_x[0], blank_y[0]) == (13.5, 13.5)


def test_measure_returns_every_property_per_image():
    values = ip.measure(np.stack([bar(), bar(shear=0.5), np.zeros((28, 28))]))
    assert list(values) == list(ip.PROPERTIES)
    assert all(array.shape == (3,) and np.isfinite(array).all() for array in values.values())
    assert values["thickness"][2] == 0 and values["slant"][2] == 0, "a blank image reads 0, not NaN"
