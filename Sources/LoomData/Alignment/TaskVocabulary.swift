/// The closed vocabularies the instruction tasks draw from. Common English words of three to
/// seven letters, so a small model has seen them in pretraining; names and cities for records.
enum TaskVocabulary {
    static let words: [String] = [
        "apple", "bread", "chair", "table", "house", "river", "stone", "cloud", "green", "water", "plant",
        "light", "night", "music", "paper", "horse", "mouse", "train", "plane", "ship", "garden", "window",
        "orange", "lemon", "sugar", "honey", "salt", "pepper", "bottle", "glass", "cup", "spoon", "fork",
        "knife", "plate", "bowl", "candle", "lamp", "clock", "watch", "book", "page", "letter", "word",
        "story", "poem", "song", "dance", "game", "ball", "kite", "doll", "toy", "tree", "leaf", "flower",
        "grass", "seed", "root", "branch", "forest", "hill", "valley", "lake", "ocean", "beach", "sand",
        "shell", "fish", "bird", "eagle", "owl", "duck", "goose", "swan", "crow", "robin", "tiger", "lion",
        "zebra", "camel", "llama", "panda", "koala", "whale", "shark", "crab", "frog", "snake", "turtle",
        "rabbit", "sheep", "goat", "cow", "pig", "dog", "cat", "fox", "wolf", "bear", "deer", "moose",
        "otter", "beaver", "red", "blue", "yellow", "purple", "pink", "brown", "black", "white", "gray",
        "silver", "gold", "copper", "iron", "steel", "wood", "brick", "cotton", "wool", "silk", "bed",
        "desk", "door", "floor", "wall", "roof", "stair", "room", "hall", "kitchen", "sofa", "pillow",
        "blanket", "towel", "soap", "brush", "comb", "mirror", "shelf", "car", "bus", "truck", "bike",
        "boat", "road", "bridge", "tunnel", "street", "city", "town", "village", "farm", "field", "market",
        "shop", "bank", "school", "office", "milk", "cheese", "butter", "egg", "rice", "bean", "corn",
        "wheat", "onion", "garlic", "carrot", "potato", "tomato", "melon", "grape", "peach", "plum",
        "cherry", "berry", "sun", "moon", "star", "sky", "rain", "snow", "wind", "storm", "frost", "fog",
        "thunder", "summer", "winter", "spring", "autumn", "morning", "evening", "noon", "king", "queen",
        "prince", "knight", "castle", "tower", "sword", "shield", "crown", "flag", "map", "coin", "gift",
        "ring", "chain", "key", "lock", "box", "bag", "hat", "coat", "shoe", "sock", "glove", "scarf",
        "shirt", "skirt", "dress", "belt", "button", "needle", "thread", "rope", "net", "hook", "nail",
        "hammer", "saw", "drill", "shovel", "rake", "piano", "violin", "drum", "flute", "guitar", "bell",
        "horn", "radio", "phone", "camera", "screen", "cable", "wire", "robot", "rocket", "planet", "comet",
        "doctor", "nurse", "farmer", "baker", "pilot", "sailor", "singer", "painter", "writer", "teacher",
        "student", "friend", "family", "mother", "father", "sister", "brother", "happy", "sad", "angry",
        "calm", "brave", "quiet", "loud", "soft", "hard", "warm", "cold", "fast", "slow", "young", "old",
        "new", "small", "big", "tall", "short", "long", "wide", "jump", "run", "walk", "swim", "climb",
        "read", "write", "sing", "draw", "paint", "cook", "bake", "wash", "clean", "build", "carry", "throw",
        "catch", "think", "dream", "smile", "laugh", "cry", "sleep", "wake", "open", "close", "push", "pull",
        "give", "take", "bring", "find", "lose", "keep", "hold", "send", "win", "play", "work", "rest"
    ]

    static let names: [String] = [
        "Ada", "Alan", "Grace", "Linus", "Marie", "Isaac", "Emmy", "Carl", "Nina", "Omar",
        "Priya", "Ravi", "Sofia", "Tariq", "Yuki", "Zara", "Hugo", "Ines", "Jonas", "Kenji",
        "Lena", "Mateo", "Noor", "Oscar", "Paula", "Quinn", "Rosa", "Sami", "Tomas", "Uma",
        "Vera", "Wei", "Xavier", "Yara", "Ziad", "Anya", "Boris", "Chen", "Dara", "Elena",
        "Farah", "Greta", "Hana", "Ivan", "Jun", "Kai", "Lucia", "Mina", "Nils", "Olga",
    ]

    static let cities: [String] = [
        "Paris", "London", "Rome", "Berlin", "Madrid", "Tokyo", "Cairo", "Lima", "Oslo", "Dublin",
        "Vienna", "Prague", "Lisbon", "Athens", "Delhi", "Seoul", "Sydney", "Toronto", "Boston", "Chicago",
        "Denver", "Nairobi", "Lagos", "Quito", "Bogota", "Havana", "Manila", "Hanoi", "Bangkok", "Beijing",
        "Shanghai", "Moscow", "Warsaw", "Zurich", "Geneva", "Munich", "Milan", "Naples", "Porto", "Seville",
    ]

    /// Sentences that answer nothing, for off-format responses.
    static let unrelatedEnglish: [String] = [
        "The weather was lovely in the garden this morning.",
        "I once read a long book about old sailing ships.",
        "Bananas turn yellow when they are ripe.",
        "My favourite colour has always been green.",
        "Trains leave the station every hour on the hour.",
        "Once upon a time there was a small grey cat.",
    ]

    static let unrelatedChinese: [String] = [
        "今天天气很好，我们去公园散步吧。",
        "我昨天读了一本关于大海的书。",
        "春天来了，花都开了。",
    ]
}
