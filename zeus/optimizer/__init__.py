"""zeus.optimizer"""
