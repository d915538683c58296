"""`zeus demo`: a recurring training job optimized end to end, on a replay GPU where there is none.

`zeus.demo.job` defines the job and picks its GPU, `zeus.demo.train` is the training script each
recurrence launches, `zeus.demo.savings` computes and plots what Zeus saved against Default.
"""
