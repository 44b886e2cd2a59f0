"""Data layer: labelled tasks (`tasks`, no torch), tokenized splits (`encode`) and Agora's augmentation (`augment`)."""

from bortnas.data.tasks import Example, TaskData, load_rotten_tomatoes, load_table

__all__ = ["Example", "TaskData", "load_rotten_tomatoes", "load_table"]
