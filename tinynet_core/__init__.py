"""The torch-free core of timm-tinynet: the model Rubik's cube, the analytic cost model, the tiny formula and the
solver. Nothing here imports torch, timm or GPyTorch (GPyTorch only to fit a frontier seen for the first time), so
``tinynet-formula`` answers faster than ``import timm``; ``timm_tinynet`` builds the networks with timm."""
