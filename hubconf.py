"""torch.hub entry points: ``torch.hub.load('<owner>/timm-tinynet', 'tinynet_c', pretrained=True)``,
or ``torch.hub.load('/path/to/checkout', 'tinynet_c', source='local')``.

Every model of the plugin is exposed under its timm name and takes timm's ``create_model`` kwargs.
"""
# what torch.hub checks before loading: every third-party module the models import, c= (the tiny formula's GPs) too
dependencies = ["torch", "timm", "fvcore", "numpy", "pandas", "gpytorch"]

import timm as _timm

import timm_tinynet as _timm_tinynet


def _hub_entry(name):
    def entry(pretrained=False, **kwargs):
        return _timm.create_model(name, pretrained=pretrained, **kwargs)

    entry.__name__ = name
    entry.__doc__ = f"timm.create_model({name!r}, ...) with timm_tinynet's models registered."
    return entry


for _name in _timm_tinynet.MODEL_NAMES:
    globals()[_name] = _hub_entry(_name)
