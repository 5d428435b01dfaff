"""The write gateway: applications write through Tandem, which routes each data id to one of
several primaries, mirrors it to a standby (sync or async) and replays what a failed side missed.

:mod:`.plan` (plan files), :mod:`.routing` (pure: ids, buckets), :mod:`.context` (a plan's
sides and its stored routing map), :mod:`.marks` (pending marks kept with the data),
:mod:`.writes` (one streamed write), :mod:`.service` (every operation), :mod:`.replay`
(reconciling what a side missed), :mod:`.tokens` (who may write), :mod:`.server` (WebHDFS over
HTTP), :mod:`.command` (``tandem gateway``).
"""
