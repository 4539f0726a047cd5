"""Real CPU runs through ``tools/mm.py``: Mask R-CNN and UperNet on the synthetic COCO / ADE20K sets, with the
smallest variant of a hierarchical family (EfficientVMamba-T) and of a plain one (Vim-Ti), built from the repo's
own configs (only data, image size, class count, schedule and hooks are overridden).

Each run trains a handful of iterations (the loss must go down), evaluates (COCO bbox / segm mAP, mIoU are
computed) and resumes from the saved checkpoint through ``--resume`` (training continues at the saved iteration).
"""
import math
import re
from pathlib import Path

import pytest

from .conftest import ROOT, load_tool

ITERS = 16
MORE = 2
DET_CONFIGS = {
    'efficientvmamba_tiny': 'configs/det/efficientvmamba/mask-rcnn_efficientvmamba-tiny_fpn_1x_coco.py',
    'vim_tiny_patch16_224': 'configs/det/vim/mask-rcnn_vim-tiny_fpn_1x_coco.py',
}
SEG_CONFIGS = {
    'efficientvmamba_tiny': 'configs/seg/efficientvmamba/upernet_efficientvmamba-tiny_160k_ade20k-512x512.py',
    'vim_tiny_patch16_224': 'configs/seg/vim/upernet_vim-tiny_60k_ade20k-512x512.py',
}


def _common(cfg, work_dir, lr):
    cfg.model.backbone.init_cfg = None
    if 'norm_cfg' in cfg.model.backbone:
        cfg.model.backbone.norm_cfg = dict(type='BN')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=ITERS, val_interval=10 ** 6)
    cfg.param_scheduler = []
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.optim_wrapper.pop('clip_grad', None)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=ITERS)
    cfg.log_processor = dict(by_epoch=False, window_size=1)
    cfg.randomness = dict(seed=0)
    cfg.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
                       dist_cfg=dict(backend='gloo'))
    cfg.work_dir = str(work_dir)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    return cfg


def det_config(path, data_root: Path, classes, work_dir):
    from mmengine.config import Config
    cfg = Config.fromfile(str(ROOT / path))
    _common(cfg, work_dir, lr=2e-4)
    cfg.model.roi_head.bbox_head.num_classes = len(classes)
    cfg.model.roi_head.mask_head.num_classes = len(classes)
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # an untrained detector still yields boxes, so mAP is computed
    # narrower heads and fewer RoIs than the paper recipe: CPU seconds, same code paths
    c = 64
    cfg.model.neck.out_channels = c
    cfg.model.rpn_head.update(in_channels=c, feat_channels=c)
    cfg.model.roi_head.bbox_roi_extractor.out_channels = c
    cfg.model.roi_head.mask_roi_extractor.out_channels = c
    cfg.model.roi_head.bbox_head.update(in_channels=c, fc_out_channels=128)
    cfg.model.roi_head.mask_head.update(in_channels=c, conv_out_channels=c)
    cfg.model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    cfg.model.train_cfg.rcnn.sampler.num = 64
    cfg.model.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    size = (64, 64)
    train_pipeline = [
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=size, keep_ratio=True), dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs')]
    test_pipeline = [
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=size, keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
    meta = dict(classes=tuple(classes))
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset = dict(
        type='CocoDataset', data_root=str(data_root), metainfo=meta, ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'), filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=train_pipeline)
    val_dataset = dict(
        type='CocoDataset', data_root=str(data_root), metainfo=meta, ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'), test_mode=True, pipeline=test_pipeline)
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset = val_dataset
        cfg[loader].batch_size = 2
    evaluator = dict(type='CocoMetric', ann_file=str(data_root / 'annotations/instances_val2017.json'),
                     metric=['bbox', 'segm'], format_only=False)
    cfg.val_evaluator = cfg.test_evaluator = evaluator
    return cfg


def seg_config(path, data_root: Path, classes, work_dir):
    from mmengine.config import Config
    cfg = Config.fromfile(str(ROOT / path))
    _common(cfg, work_dir, lr=3e-4)
    size = (64, 64)
    cfg.model.data_preprocessor.size = size
    cfg.model.decode_head.num_classes = len(classes)
    cfg.model.auxiliary_head.num_classes = len(classes)
    cfg.model.decode_head.channels = 32
    cfg.model.auxiliary_head.channels = 32
    cfg.model.test_cfg = dict(mode='whole')
    train_pipeline = [
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomResize', scale=(64, 64), ratio_range=(1.0, 1.25), keep_ratio=True),
        dict(type='RandomCrop', crop_size=size), dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]
    test_pipeline = [
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=size, keep_ratio=True),
        dict(type='LoadAnnotations', reduce_zero_label=True), dict(type='PackSegInputs')]
    meta = dict(classes=tuple(classes), palette=[[k * 60 % 256, k * 110 % 256, k * 170 % 256]
                                                 for k in range(len(classes))])
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset = dict(
        type='BaseSegDataset', img_suffix='.jpg', seg_map_suffix='.png', data_root=str(data_root), metainfo=meta,
        reduce_zero_label=True, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'), pipeline=train_pipeline)
    val_dataset = dict(
        type='BaseSegDataset', img_suffix='.jpg', seg_map_suffix='.png', data_root=str(data_root), metainfo=meta,
        reduce_zero_label=True, data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline)
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset = val_dataset
        cfg[loader].batch_size = 1
    cfg.val_evaluator = cfg.test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
    return cfg


_ITER_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/\d+\].*?\sloss: ([-\d.e+]+|nan|inf)')


def _train_records(work_dir: Path):
    """(iteration, loss) of every training iteration logged under ``work_dir`` (mmengine's per-run text logs), in
    order. (The text log, not vis_data: in one process later runners reuse the first runner's visualizer.)"""
    records = []
    for path in sorted(work_dir.glob('*/*.log')):
        records += [(int(m.group(1)), float(m.group(2))) for m in _ITER_LINE.finditer(path.read_text())]
    return records


def _train_eval_resume(cfg, tmp_path, metric_keys):
    mm = load_tool('mm')
    work_dir = Path(cfg.work_dir)
    cfg_file = tmp_path / f'{tmp_path.name}.py'  # distinct names: distinct mmengine experiment / message hub
    cfg.dump(str(cfg_file))

    mm.main(['train', str(cfg_file), '--work-dir', str(work_dir)])
    losses = [loss for _, loss in _train_records(work_dir)]
    assert len(losses) == ITERS and all(math.isfinite(v) for v in losses)
    head, tail = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert tail < head, f'loss did not decrease: first {losses[:4]}, last {losses[-4:]}'

    checkpoint = work_dir / f'iter_{ITERS}.pth'
    assert checkpoint.is_file()
    metrics = mm.main(['test', str(cfg_file), str(checkpoint), '--work-dir', str(tmp_path / 'test')])
    for key in metric_keys:
        assert key in metrics, f'{key} not computed: {metrics}'
        assert math.isfinite(metrics[key]) and metrics[key] >= 0

    mm.main(['train', str(cfg_file), '--work-dir', str(work_dir), '--resume',
             '--cfg-options', f'train_cfg.max_iters={ITERS + MORE}'])
    resumed = _train_records(work_dir)[ITERS:]
    assert [i for i, _ in resumed] == list(range(ITERS + 1, ITERS + MORE + 1)), 'did not resume at the saved iter'
    assert (work_dir / f'iter_{ITERS + MORE}.pth').is_file()
    return losses, metrics


@pytest.mark.parametrize('model', sorted(DET_CONFIGS))
def test_mask_rcnn_trains_evaluates_resumes(model, synthetic_coco, tmp_path):
    root, meta = synthetic_coco
    cfg = det_config(DET_CONFIGS[model], root, meta['classes'], tmp_path / 'work')
    _train_eval_resume(cfg, tmp_path, ['coco/bbox_mAP', 'coco/segm_mAP'])


@pytest.mark.parametrize('model', sorted(SEG_CONFIGS))
def test_upernet_trains_evaluates_resumes(model, synthetic_ade, tmp_path):
    root, meta = synthetic_ade
    cfg = seg_config(SEG_CONFIGS[model], root, meta['classes'], tmp_path / 'work')
    _train_eval_resume(cfg, tmp_path, ['mIoU'])
