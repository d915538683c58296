"""zeus.optimizer.batch_size.server"""
