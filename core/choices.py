"""The named choices of the network, device and precision, in one place for the command line,
the app and the engine. Importing this loads nothing heavy (no torch)."""

VARIANTS = ("fcn32s", "fcn16s", "fcn8s", "fcn4s")
BACKBONES = ("vgg16", "resnet50", "resnet101")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # the command line also takes cuda:N
PRECISION_CHOICES = ("auto", "fp32", "bf16")
# A model learnt from scratch in the app. FCN-4s cut the corrections on the second image of the
# session bench (17-19 % against 27-30 %), but from scratch on 21 classes its stride-4 skip made
# the learner diverge (bench/gui_latency.py): FCN-8s stays the default until that is fixed.
SCRATCH_VARIANT = "fcn8s"
