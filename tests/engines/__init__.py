"""Tests of the TensorRT engine-build stage (dsp_deploy.engines, dsp-deploy build)."""
