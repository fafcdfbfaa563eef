"""biospike.io"""
