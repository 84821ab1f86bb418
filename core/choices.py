"""The named choices of the network, device and precision, in one place for the command line,
the app and the engine. Importing this loads nothing heavy (no torch)."""

VARIANTS = ("fcn32s", "fcn16s", "fcn8s", "fcn4s")
BACKBONES = ("vgg16", "resnet50", "resnet101")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # the command line also takes cuda:N
PRECISION_CHOICES = ("auto", "fp32", "bf16")
# A model learnt from scratch in the app: FCN-4s's stride-4 skip halves the corrections on the
# second image of a from-scratch session (bench/session.py: 17-19 % against 27-30 % for FCN-8s).
SCRATCH_VARIANT = "fcn4s"
