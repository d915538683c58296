"""zeus.simulate"""
