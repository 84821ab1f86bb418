"""The named choices of the network, device and precision, in one place for the command line,
the app and the engine. Importing this loads nothing heavy (no torch)."""

VARIANTS = ("fcn32s", "fcn16s", "fcn8s")
BACKBONES = ("vgg16", "resnet50", "resnet101")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # the command line also takes cuda:N
PRECISION_CHOICES = ("auto", "fp32", "bf16")
