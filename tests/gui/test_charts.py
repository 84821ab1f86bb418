"""The learning dock's charts draw their scale inside the widget."""

import numpy as np
import qimage2ndarray

from fcn_gui.charts import CorrectionChart


def test_the_corrections_scale_label_is_drawn_whole(qtbot):
    chart = CorrectionChart()
    qtbot.addWidget(chart)
    chart.resize(320, 100)
    chart.set_values([1.0, 0.4])  # the widest label: 100%
    chart.show()
    qtbot.waitExposed(chart)
    pixels = qimage2ndarray.rgb_view(chart.grab().toImage())
    band = pixels[18:34, :40].astype(int).sum(axis=2)  # the label's row, left of the bars
    ink = np.flatnonzero((band < 300).any(axis=0))  # dark text on the light base
    assert ink.size and ink[0] >= 2  # clipped, its first digit was cut at the widget's edge
