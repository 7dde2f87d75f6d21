"""pip install of the ROS-free core and its command-line tools.

``pip install .`` gives the simulator, channel model, datasets, models, distillation, training
and evaluation (``beam-tracking ...``) without ROS. The ROS 2 package itself (messages, nodes,
launch files) is built by colcon from package.xml / CMakeLists.txt; see README.md.
"""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="beam_tracking_ros",
    version="0.1.0",
    description="Sensing-aided mmWave beam tracking with knowledge distillation (ROS-free core and CLI)",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["beam_tracking_ros", "beam_tracking_ros.*"]),
    include_package_data=True,
    install_requires=[
        "numpy>=1.24",
        "torch>=2.1",
        "PyYAML>=6",
        "tqdm>=4.60",
        "rosbags>=0.10",
        "mcap>=1.1",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "pillow>=10",
    ],
    extras_require={
        "carla": ["carla==0.9.16"],
        "dev": ["pytest>=8", "pytest-timeout>=2", "ruff>=0.5"],
    },
    entry_points={
        "console_scripts": [
            "beam-tracking=beam_tracking_ros.cli:main",
        ],
    },
)
