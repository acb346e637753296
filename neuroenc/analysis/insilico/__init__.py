"""In-silico experiments on a trained encoder: what each neuron's model learned (receptive field,
grating tuning, most exciting input, saccade-triggered response, scores per stimulus class), and
on simulated data how close that is to the simulator's truth. ``python -m neuroenc.insilico``."""
