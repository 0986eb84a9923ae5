# bench/scale.gp: plot bench/results/scale.csv (tools/bench runs it).
# gnuplot -e "dir='bench/results'" bench/scale.gp  ->  dir/scale.png
if (!exists("dir")) dir = "bench/results"
set datafile separator ","
set terminal pngcairo size 1400,520 font ",10"
set output dir."/scale.png"
csv = dir."/scale.csv"
set logscale x 10
unset logscale y
set xlabel "buckets in the table"
set xrange [0.5:2e6]
set yrange [0:*]
set key top left
set grid
set multiplot layout 1,2 title "Scale: tables of 1 to 1M GCRA buckets"
set title "CPU ns per call"
set ylabel "ns"
plot csv skip 1 using 1:4 with linespoints lw 2 title "try\\_acquire on a hot handle", \
     csv skip 1 using 1:5 with linespoints lw 2 title "lookup by name, random names", \
     csv skip 1 using 1:9 with linespoints dt 2 title "one cache miss at that size (pointer chase)"
set title "index probes per lookup by name (linear probing, load <= 0.5)"
set ylabel "probes"
plot csv skip 1 using 1:6 with linespoints lw 2 title "mean", \
     csv skip 1 using 1:7 with linespoints dt 2 title "max"
unset multiplot
