"""mapreduce: a MapReduce framework for Python whose shuffle goes through disk."""
