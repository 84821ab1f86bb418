import math

import numpy as np
import pytest

from core.training.metrics import ConfusionMeter, confusion_matrix, scores


def test_confusion_matrix_counts_and_skips_void():
    true = np.array([[0, 0, 1], [1, 2, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1], [1, 1, 0]], dtype=np.uint8)
    expected = np.array([[1, 1, 0], [0, 2, 0], [0, 1, 0]])
    np.testing.assert_array_equal(confusion_matrix(pred, true, 3), expected)


def test_metrics_by_hand():
    # rows: true class, columns: predicted class
    n = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    s = scores(n)
    assert s.pixel_accuracy == pytest.approx(7 / 10)
    assert s.mean_accuracy == pytest.approx((3 / 4 + 4 / 6) / 2)  # class 2 absent from the truth
    iou0 = 3 / (4 + 5 - 3)
    iou1 = 4 / (6 + 5 - 4)
    assert s.mean_iou == pytest.approx((iou0 + iou1) / 2)  # class 2 absent everywhere: not counted
    assert s.fw_iou == pytest.approx((4 * iou0 + 6 * iou1) / 10)
    assert math.isnan(s.per_class_iou[2])


def test_class_predicted_but_absent_from_truth_counts_as_zero_iou():
    n = np.array([[5, 1], [0, 0]])
    s = scores(n)
    assert s.per_class_iou == pytest.approx((5 / 6, 0.0))
    assert s.mean_iou == pytest.approx(5 / 12)
    assert s.mean_accuracy == pytest.approx(5 / 6)


def test_perfect_prediction_and_meter_accumulates():
    meter = ConfusionMeter(2)
    label = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    meter.update(label, label)
    meter.update(label, label)
    s = meter.scores()
    assert meter.matrix.sum() == 8
    assert (s.pixel_accuracy, s.mean_accuracy, s.mean_iou, s.fw_iou) == (1.0, 1.0, 1.0, 1.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in size"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), 2)
    with pytest.raises(ValueError, match="below 2"):
        confusion_matrix(np.full((2, 2), 3, np.uint8), np.zeros((2, 2), np.uint8), 2)
