from pathlib import Path

from setuptools import find_packages, setup

version = {}
for line in Path('vmamba_zoo/__init__.py').read_text().splitlines():
    if line.startswith('__version__'):
        exec(line, version)

setup(
    name='vmamba_zoo',
    version=version['__version__'],
    description='Vision-Mamba backbones (VMamba, Vim, PlainMamba, ...) behind one timm / mmdet / mmseg API',
    long_description=Path('README.md').read_text(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['vmamba_zoo', 'vmamba_zoo.*']),
    python_requires='>=3.10',
    # torch 2.14.1 + torchvision 0.29.1 is the pair that installs and imports together on the project machines;
    # the device image uses torch 2.11. Nothing here needs a compiler or a GPU.
    install_requires=[
        'torch>=2.4,<2.15',
        'torchvision>=0.19,<0.30',
        'timm>=1.0.15,<1.1',
        'fvcore>=0.1.5.post20221221',
        'numpy',
    ],
    extras_require={
        # ninja: torch's extension builder for the C++ CPU kernels (kernels/cpu, built on first use)
        'dev': ['pytest>=8', 'pytest-xdist>=3', 'ninja'],
        'tools': ['matplotlib', 'tqdm', 'pyyaml', 'safetensors'],
        # the mmcv build is its own step (tools/install_mm.sh, issue "Detection and segmentation")
        # mmseg imports ftfy / regex without declaring them; mmcv 2.1.0 predates OpenCV 5
        'mm': ['mmengine>=0.10,<0.11', 'mmdet==3.3.0', 'mmsegmentation==1.2.2', 'ftfy', 'regex',
               'opencv-python>=4,<5', 'pycocotools'],
    },
)
