"""neuroenc: encoding models of visual cortex (frontend -> core -> modulator -> readout)."""

__version__ = "0.1.0"
