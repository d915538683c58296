"""zeus.monitor"""
