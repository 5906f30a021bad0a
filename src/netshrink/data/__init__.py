"""Image classification data: built-in sets and files on disk, split, resized, normalised.

Specs (see :func:`list_datasets`): ``mnist5k`` (default), ``digits``, ``mnist:DIR``,
``cifar10:DIR``, ``folder:DIR``. Images are kept in memory as uint8 and normalised per
batch by :meth:`ImageSplit.batches`; ``KIND:DIR?stream=1`` leaves them on disk and reads
them batch by batch (:class:`StreamingSplit`, docs/data.md).
"""

from netshrink.data.dataset import Dataset, ImageSplit
from netshrink.data.load import DEFAULT_DATA, list_datasets, load_dataset, native_input_size
from netshrink.data.streaming import StreamingSplit

__all__ = [
    "DEFAULT_DATA",
    "Dataset",
    "ImageSplit",
    "StreamingSplit",
    "list_datasets",
    "load_dataset",
    "native_input_size",
]
