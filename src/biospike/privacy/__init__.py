"""biospike.privacy"""
