"""The named choices of the network, device and precision, in one place for the command line,
the app and the engine. Importing this loads nothing heavy (no torch)."""

VARIANTS = ("fcn32s", "fcn16s", "fcn8s", "fcn4s", "unet")
UNET = "unet"  # a variant with its own small encoder (core.model.unet), so also its backbone
BACKBONES = ("vgg16", "resnet50", "resnet101", UNET)
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # the command line also takes cuda:N
PRECISION_CHOICES = ("auto", "fp32", "bf16")
# A model learnt from scratch in the app: the small U-Net (core.model.unet). On the session bench it
# cut the corrections to 13.2 % of painting against 14.7 % for FCN-8s, and 11 % on the second
# image against 21 % (README, "Learning while you annotate").
SCRATCH_VARIANT = UNET
