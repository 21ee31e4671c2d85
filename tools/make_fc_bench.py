"""Writes data/fc_bench (question.jsonl, reference_answer/gpt-4.jsonl): the
project's own 40 two-turn questions over FastChat's 8 MT-bench categories,
written for this project. Run from the repository root."""
import json
Q = []
def q(cat, t1, t2, ref=None):
    Q.append((cat, t1, t2, ref))

# writing
q("writing", "Write a short letter from a lighthouse keeper to the ship captains who pass by, explaining why the light will go dark for one night next month.",
  "Rewrite the letter as a four-line poem that keeps the date and the reason.")
q("writing", "Draft a product description, under 120 words, for a reusable water bottle that keeps drinks cold for a full day.",
  "Now write a version aimed at children aged eight to ten, keeping every fact the same.")
q("writing", "Compose a welcome speech for the first day of a community gardening club. Mention the shared tool shed and the watering schedule.",
  "Shorten the speech to three sentences and end it with a question to the audience.")
q("writing", "Write the opening paragraph of a mystery story set in a train station during a snowstorm.",
  "Continue the story with a second paragraph in which the detective notices something unusual about a suitcase.")
q("writing", "Explain to a new employee, in a friendly email, how the office coffee machine should be cleaned at the end of each day.",
  "Turn the email into a numbered checklist of no more than six steps.")
# roleplay
q("roleplay", "Pretend you are a tour guide in an ancient Roman market. Greet a group of visitors and describe what they can buy.",
  "A visitor asks you how much a loaf of bread costs and whether they can pay with a coin from another city. Stay in character and answer.")
q("roleplay", "You are a ship's cook on a long sea voyage. A sailor complains that the food is boring. Respond to him.",
  "The captain now orders you to make the supplies last two more weeks. Tell the crew what changes at mealtimes.")
q("roleplay", "Act as a librarian helping a shy teenager who wants a book about space but is not sure what to ask for.",
  "The teenager says they already read every book about planets. Suggest something different and explain why they might like it.")
q("roleplay", "Imagine you are a weather forecaster on a radio show and a big storm is approaching the coast. Give the evening forecast.",
  "A caller asks whether it is safe to drive to the airport tomorrow morning. Answer them on air.")
q("roleplay", "You are a museum robot guide. Introduce yourself to a class of young students and tell them one rule they must follow.",
  "One student touches a painting anyway. Respond politely but firmly, staying in character.")
# reasoning
q("reasoning", "Ana is taller than Ben. Ben is taller than Carla. Dev is shorter than Carla. Who is the second shortest?",
  "If Eli is taller than Ana, how many people are taller than Ben?",
  ["Order from tallest: Ana > Ben > Carla > Dev. The shortest is Dev, so the second shortest is Carla.",
   "With Eli taller than Ana the order is Eli > Ana > Ben > Carla > Dev, so two people (Eli and Ana) are taller than Ben."])
q("reasoning", "A box holds red and blue marbles. There are twice as many red as blue, and 18 marbles in total. How many are blue?",
  "You remove 4 red marbles and add 2 blue ones. What fraction of the marbles is now blue?",
  ["Let blue be b; red is 2b, so 3b = 18 and b = 6 blue marbles (12 red).",
   "Red becomes 8, blue becomes 8, total 16, so blue is 8/16 = 1/2 of the marbles."])
q("reasoning", "Every morning a clock loses 2 minutes per hour. It is set correctly at 8:00. What time does it show at 14:00 real time?",
  "At what real time will the clock show 14:00?",
  ["Six real hours pass and it loses 12 minutes, so it shows 13:48.",
   "The clock advances 58 minutes per real hour. It must advance 6 hours = 360 minutes, which takes 360/58 = 6.2069 real hours, about 6 h 12 min 25 s, so about 14:12 real time."])
q("reasoning", "In a race, you overtake the runner in second place. What position are you in now?",
  "Then you overtake the runner in last place. Is that possible? Explain.",
  ["You take the place of the runner you passed, so you are now second.",
   "It is not possible: if someone is in last place, nobody is behind them to overtake them from; you cannot pass the last runner from behind (unless you are lapping, which is a different situation)."])
q("reasoning", "A farmer has 17 sheep. All but 9 run away. How many sheep does the farmer have left?",
  "The farmer then buys as many sheep as ran away. How many sheep does he have now?",
  ["'All but 9' means 9 stay, so the farmer has 9 sheep left.",
   "8 sheep ran away (17 - 9); buying 8 more gives 9 + 8 = 17 sheep."])
# math
q("math", "Solve for x: 3x + 7 = 25.",
  "Using that x, compute x squared minus 2x.",
  ["3x = 18, so x = 6.", "6^2 - 2*6 = 36 - 12 = 24."])
q("math", "A rectangle has a perimeter of 30 cm and its length is twice its width. What is its area?",
  "If both sides are increased by 1 cm, by how much does the area grow?",
  ["2(l + w) = 30 with l = 2w gives 6w = 30, w = 5, l = 10; area = 50 square cm.",
   "New sides 11 and 6: area 66, so the area grows by 16 square cm."])
q("math", "What is the sum of all integers from 1 to 100 that are divisible by 3?",
  "What is the sum of the integers from 1 to 100 that are divisible by neither 3 nor 5?",
  ["Multiples of 3 up to 99: 3 + 6 + ... + 99 = 3 * (33 * 34 / 2) = 3 * 561 = 1683.",
   "Total 1..100 is 5050. Multiples of 5 sum to 5 * (20 * 21 / 2) = 1050; multiples of 15 sum to 15 * (6 * 7 / 2) = 315. Divisible by 3 or 5: 1683 + 1050 - 315 = 2418. So 5050 - 2418 = 2632."])
q("math", "Two fair six-sided dice are rolled. What is the probability that the sum is 8?",
  "What is the probability that the sum is 8 given that at least one die shows a 3?",
  ["Pairs summing to 8: (2,6), (3,5), (4,4), (5,3), (6,2): 5 of 36, so 5/36.",
   "At least one 3: 11 outcomes. Among them, sum 8: (3,5) and (5,3), so 2/11."])
q("math", "A car travels 150 km at 60 km/h and then 150 km at 100 km/h. What is its average speed for the whole trip?",
  "How long would the trip have taken at a constant 80 km/h, and how does that compare?",
  ["Time = 150/60 + 150/100 = 2.5 + 1.5 = 4 h for 300 km, so the average speed is 75 km/h.",
   "At 80 km/h, 300 km takes 3.75 h, which is 0.25 h (15 minutes) less than the 4 h trip."])
# coding
q("coding", "Write a Python function that returns True when a string is a palindrome, ignoring case and non-letter characters.",
  "Now make it work in O(1) extra space without building a cleaned copy of the string.",
  ["def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalpha()]\n    return t == t[::-1]",
   "def is_palindrome(s):\n    i, j = 0, len(s) - 1\n    while i < j:\n        if not s[i].isalpha():\n            i += 1\n        elif not s[j].isalpha():\n            j -= 1\n        elif s[i].lower() != s[j].lower():\n            return False\n        else:\n            i += 1\n            j -= 1\n    return True"])
q("coding", "Write a C function that reverses a singly linked list in place and returns the new head.",
  "Explain the time and space complexity of your function, and write a recursive version.",
  ["struct node { int v; struct node *next; };\nstruct node *reverse(struct node *h) {\n    struct node *prev = NULL;\n    while (h) { struct node *n = h->next; h->next = prev; prev = h; h = n; }\n    return prev;\n}",
   "The loop visits each node once: O(n) time, O(1) extra space. Recursive:\nstruct node *reverse_rec(struct node *h) {\n    if (!h || !h->next) return h;\n    struct node *r = reverse_rec(h->next);\n    h->next->next = h;\n    h->next = NULL;\n    return r;\n}\nThis uses O(n) stack space."])
q("coding", "Write a SQL query that lists the three customers with the highest total order amount from a table orders(customer_id, amount).",
  "Modify the query so customers with equal totals at the cut-off are all included.",
  ["SELECT customer_id, SUM(amount) AS total FROM orders GROUP BY customer_id ORDER BY total DESC LIMIT 3;",
   "SELECT customer_id, total FROM (SELECT customer_id, SUM(amount) AS total, DENSE_RANK() OVER (ORDER BY SUM(amount) DESC) AS r FROM orders GROUP BY customer_id) t WHERE r <= 3 ORDER BY total DESC; (RANK() instead of DENSE_RANK() keeps exactly the ties at the third place.)"])
q("coding", "Write a Python function that returns the n-th Fibonacci number with F(0) = 0 and F(1) = 1, in linear time.",
  "Now write a version that runs in O(log n) time.",
  ["def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
   "Fast doubling: F(2k) = F(k) * (2F(k+1) - F(k)), F(2k+1) = F(k)^2 + F(k+1)^2.\ndef fib(n):\n    def go(k):\n        if k == 0:\n            return (0, 1)\n        a, b = go(k // 2)\n        c = a * (2 * b - a)\n        d = a * a + b * b\n        return (d, c + d) if k % 2 else (c, d)\n    return go(n)[0]"])
q("coding", "Write a JavaScript function that removes duplicate values from an array while keeping the first occurrence order.",
  "Extend it to remove duplicates of objects that have the same id property.",
  ["function unique(arr) { return [...new Set(arr)]; }  // a Set keeps insertion order",
   "function uniqueById(arr) {\n  const seen = new Set();\n  return arr.filter(o => { if (seen.has(o.id)) return false; seen.add(o.id); return true; });\n}"])
# extraction
q("extraction", "From this text, list every person's name and their job as JSON: 'Maria, a nurse, met her cousin Tomas, who drives a bus, and their friend Li, a software tester, at the cafe.'",
  "Add a field with the number of letters in each name.")
q("extraction", "Extract the dates and amounts from this note as a table: 'Paid rent 850 on March 1, electricity 62.40 on March 9, and internet 39.99 on March 15.'",
  "Compute the total paid and say which payment was the smallest.")
q("extraction", "Read this review and give the product, the rating out of five, and two complaints: 'The CloudStep sneakers are comfy, four stars. But the laces fray quickly and the sole squeaks on wet floors.'",
  "Rewrite the two complaints as neutral suggestions to the manufacturer.")
q("extraction", "Identify the cities and the countries they belong to in this sentence: 'After Lyon we flew to Osaka, then took a train to Kyoto before a stop in Vancouver on the way home.'",
  "Sort the cities by the order in which they were visited and return them as a comma-separated list.")
q("extraction", "Pull out the ingredients and their quantities: 'Mix two cups of flour, one teaspoon of salt, three eggs and half a cup of milk.'",
  "Double the recipe and present it as a bulleted list.")
# stem
q("stem", "Explain why the sky looks blue during the day but red or orange at sunset.",
  "Would the sky on a planet with a much thinner atmosphere look the same? Explain briefly.")
q("stem", "What is the difference between an element and a compound? Give two examples of each.",
  "Is table salt dissolved in water a compound or a mixture? Explain.")
q("stem", "Describe how a vaccine trains the immune system, in language a twelve-year-old could follow.",
  "Why do some vaccines need a booster dose?")
q("stem", "How does a refrigerator move heat from inside to outside when the outside is warmer?",
  "Why does leaving the refrigerator door open not cool a closed kitchen?")
q("stem", "Explain what a binary search does and why it is faster than checking every item.",
  "What goes wrong if the list is not sorted?")
# humanities
q("humanities", "Why did the invention of the printing press change how ideas spread in Europe?",
  "Compare that change with the effect of the internet on news today, in two or three sentences.")
q("humanities", "Summarise the main idea of supply and demand for someone who has never studied economics.",
  "Use the idea to explain why concert tickets can cost much more on resale sites.")
q("humanities", "What are the main differences between a direct democracy and a representative democracy?",
  "Give one advantage and one risk of using online voting for national decisions.")
q("humanities", "Describe the role of storytelling in cultures that did not use writing.",
  "How might a story change as it is passed down over many generations? Give an example.")
q("humanities", "What makes a piece of art 'abstract'? Explain with reference to colour and form.",
  "Suggest how a museum could help visitors who find abstract art confusing.")

assert len(Q) == 40
with open("data/fc_bench/question.jsonl", "w") as f:
    for i, (cat, t1, t2, ref) in enumerate(Q):
        f.write(json.dumps({"question_id": i + 1, "category": cat, "turns": [t1, t2]}) + "\n")
with open("data/fc_bench/reference_answer/gpt-4.jsonl", "w") as f:
    for i, (cat, t1, t2, ref) in enumerate(Q):
        if ref:
            f.write(json.dumps({"question_id": i + 1, "answer_id": "fcbenchref%04d" % (i + 1), "model_id": "gpt-4",
                                "choices": [{"index": 0, "turns": ref}], "tstamp": 1767225600.0}) + "\n")
