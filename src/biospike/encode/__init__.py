"""biospike.encode"""
