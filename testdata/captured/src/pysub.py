import subprocess
ps=[subprocess.Popen(["sleep","30"]) for i in range(100)]
