"""zeus.optimizer.batch_size"""
