"""`mqt-llava convert`: the released MQT-LLaVA checkpoint (LLaVA-repository layout) as a Hub-native folder.

`convert_original` runs the conversion; `original_checkpoint` reads weight folders shard by shard,
`original_mapping` maps the original config and tensors onto this project's model, and `shard_writer` writes
sharded safetensors.
"""
