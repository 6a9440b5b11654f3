"""Images (issue 20): the reader with its cache (read.py, store.py, decode.py); the recipe's augmentation
lives in augment.py."""

from .read import IMAGE_EXTENSIONS, MAX_SIDE, ImageSet, csv_columns, image_source, read_images, resize_side

__all__ = ["IMAGE_EXTENSIONS", "MAX_SIDE", "ImageSet", "csv_columns", "image_source", "read_images", "resize_side"]
