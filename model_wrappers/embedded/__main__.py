"""``python -m model_wrappers.embedded`` prints the embedded checkpoint's folder (for ``pretrained=``)."""

from model_wrappers.embedded import checkpoint_path

print(checkpoint_path())
