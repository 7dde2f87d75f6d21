"""Training, distillation, evaluation and export (``beam-tracking train|distill|evaluate|export``).

Import the submodules directly (config, trainer, distill, export, cli). Loading an exported model for
inference is ``beam_tracking_ros.inference.load_model``, which imports nothing from here.
"""
