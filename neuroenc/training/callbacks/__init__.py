"""Lightning callbacks that write a run's results: ``metrics.json`` (:mod:`.summary`) and the best
epoch's per-neuron scores (:mod:`.per_neuron`)."""
