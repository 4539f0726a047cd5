"""tools/make_synthetic.py coco / ade20k: annotations match the drawn objects, output is deterministic."""
import json

import numpy as np
import pytest
from PIL import Image

from .conftest import load_tool

pytestmark = pytest.mark.no_mm  # plain numpy / PIL: runs without the mm stack


def test_coco_annotations_match_the_images(tmp_path):
    ms = load_tool('make_synthetic')
    meta = ms.main(['coco', '--out', str(tmp_path / 'a'), '--train-images', '4', '--val-images', '2', '--size', '48'])
    assert meta['classes'] == ['square', 'triangle', 'diamond'] and meta['train_objects'] >= 4
    data = json.loads((tmp_path / 'a/annotations/instances_train2017.json').read_text())
    assert [c['id'] for c in data['categories']] == [1, 2, 3]
    assert len({a['id'] for a in data['annotations']}) == len(data['annotations'])
    images = {im['id']: im for im in data['images']}
    for ann in data['annotations']:
        im = images[ann['image_id']]
        assert (tmp_path / 'a/train2017' / im['file_name']).is_file()
        x, y, w, h = ann['bbox']
        xs, ys = ann['segmentation'][0][0::2], ann['segmentation'][0][1::2]
        assert x - 1 <= min(xs) and max(xs) <= x + w + 1 and y - 1 <= min(ys) and max(ys) <= y + h + 1
        assert 0 < ann['area'] <= w * h and ann['iscrowd'] == 0
    ms.write_coco(tmp_path / 'b', train_images=4, val_images=2, size=48)
    for name in ('annotations/instances_train2017.json', 'train2017/000003.png'):
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes()


def test_ade20k_label_maps(tmp_path):
    ms = load_tool('make_synthetic')
    meta = ms.write_ade20k(tmp_path, num_classes=2, train_images=3, val_images=1, size=40)
    assert meta['classes'] == ['background', 'square', 'triangle']
    seg = np.asarray(Image.open(tmp_path / 'annotations/training/000000.png'))
    img = np.asarray(Image.open(tmp_path / 'images/training/000000.jpg'))
    assert seg.shape == img.shape[:2] == (40, 40)
    assert set(np.unique(seg)) <= {1, 2, 3} and (seg >= 2).any()  # 0 (ignored after reduce_zero_label) unused
    with pytest.raises(ValueError, match='num_classes'):
        ms.write_ade20k(tmp_path / 'x', num_classes=7)
