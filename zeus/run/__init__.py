"""zeus.run"""
