"""The per-platform FlagGems exclusion table and the spec users override it with."""

import pytest

from robobrain_ros.serve.flaggems_exclusions import (
    EXCLUSION_TABLE,
    PLATFORMS,
    ExclusionSpecError,
    cuda_platform,
    default_exclusions,
    describe,
    resolve_exclusions,
)


def test_every_platform_has_a_row_with_reasons_and_sources():
    assert set(EXCLUSION_TABLE) == set(PLATFORMS)
    for groups in EXCLUSION_TABLE.values():
        for group in groups:
            assert group.ops and group.why and group.source


def test_hopper_leaves_the_measured_broken_kernels_and_the_gemms_to_pytorch():
    hopper, cuda = default_exclusions('cuda-hopper'), default_exclusions('cuda')
    assert set(cuda) < set(hopper)
    for op in ('mul', 'mul_', 'fill_scalar_', 'fill_tensor_', 'sqrt', 'mm', 'addmm', 'bmm'):
        assert op in hopper and op not in cuda
    assert {'copy_', 'index', 'exponential_', 'softmax'} <= set(cuda)
    assert len(hopper) == len(set(hopper))


def test_ascend_leaves_the_index_gather_to_pytorch():
    assert 'index' in default_exclusions('ascend')


@pytest.mark.parametrize('major, platform', [(9, 'cuda-hopper'), (8, 'cuda'), (10, 'cuda'), (None, 'cuda')])
def test_cuda_platform_by_compute_capability(major, platform):
    assert cuda_platform(major) == platform


@pytest.mark.parametrize('spec', [None, '', ' , ', 'default', ['default']])
def test_no_spec_means_the_platform_default(spec):
    assert resolve_exclusions(spec, 'cuda-hopper') == default_exclusions('cuda-hopper')


def test_none_leaves_nothing_out():
    assert resolve_exclusions('none', 'cuda-hopper') == []


def test_plain_names_replace_the_default():
    assert resolve_exclusions('mul, sqrt', 'cuda-hopper') == ['mul', 'sqrt']
    assert resolve_exclusions(['mul'], 'ascend') == ['mul']


def test_default_plus_and_minus():
    ops = resolve_exclusions('default,-mm,-mm_out,index_select', 'cuda-hopper')
    assert 'mm' not in ops and 'mm_out' not in ops and 'addmm' in ops
    assert ops[-1] == 'index_select'
    assert resolve_exclusions('-mm', 'cuda-hopper') == [op for op in default_exclusions('cuda-hopper')
                                                         if op != 'mm']


def test_bad_specs_are_errors():
    with pytest.raises(ExclusionSpecError, match='lone'):
        resolve_exclusions('default,-', 'cuda')
    with pytest.raises(ExclusionSpecError, match='unknown FlagGems platform'):
        resolve_exclusions(None, 'tpu')


def test_describe_says_how_the_list_differs_from_the_default():
    assert describe('cuda', default_exclusions('cuda')).startswith(
        f'{len(default_exclusions("cuda"))} ops left to PyTorch (the cuda default): exponential_, softmax, copy_')
    assert '(the cuda-hopper default + foo - mm)' in describe(
        'cuda-hopper', resolve_exclusions('default,-mm,foo', 'cuda-hopper'))
    assert describe('cuda', []) == 'no ops left to PyTorch: FlagGems takes every op it has'
