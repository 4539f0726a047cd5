# The shared UperNet 160k recipe with the multi-scale test of the Spatial-Mamba and VSSD repositories: their
# segmentation/configs/_base_/datasets/ade20k.py (identical in EdwardChasel/Spatial-Mamba 71221ebfaa5f and
# YuHengsss/VSSD 87b753b356dd) replaces mmseg's 6 ratios 0.5-1.75 of the image by 3 fixed scales,
# Resize(scale=(2048 r, 512 r), keep_ratio=True) for r in 0.75 / 1.0 / 1.25, each with and without a horizontal flip.
# Their "mIoU (MS)" numbers are measured with it (`tools/test.py --tta`); single-scale testing is unchanged.
_base_ = ['./upernet_160k_ade20k-512x512.py']

tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(1536, 384), keep_ratio=True),
             dict(type='Resize', scale=(2048, 512), keep_ratio=True),
             dict(type='Resize', scale=(2560, 640), keep_ratio=True)],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ]),
]
